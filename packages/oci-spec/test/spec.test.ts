import { mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  currentCapabilities,
  defaultSeccompProfile,
  directoryRootfs,
  generateDefaultSpec,
  generateSpec,
  inGoFieldOrder,
  layeredRootfs,
  replaceOrAppendEnv,
  resolveUser,
  type Spec,
  type SpecOpt,
  validateRuntimeSpec,
  withDefaultSeccomp,
  withDefaultUnixDevices,
  withEnv,
  withHostNetwork,
  withImageConfig,
  withMemoryLimit,
  withMounts,
  withPrivileged,
  withProcessArgs,
  withProcessCwd,
  withRootFSReadonly,
  withTTY,
  withUser,
} from "../src/index.js";

/** Specs a real containerd 1.6.20 produced (`ctr oci spec`, `ctr containers create` + `ctr containers info`). */
const fixture = (name: string): Spec =>
  JSON.parse(readFileSync(new URL(`./fixtures/ctr-1.6.20-${name}.json`, import.meta.url), "utf8")) as Spec;

/** The busybox image config the fixtures were made from. */
const BUSYBOX = { Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], Cmd: ["sh"] };

/** ctr run's option order for an image: defaults, devices, env, mounts, image config, then the flags. */
function ctrRun(opts: { env?: string[]; args?: string[]; extra?: SpecOpt[]; mounts?: Spec["mounts"] }): SpecOpt[] {
  return [
    withDefaultUnixDevices,
    withEnv(opts.env ?? []),
    withMounts(opts.mounts ?? []),
    withImageConfig(BUSYBOX),
    ...(opts.args && opts.args.length > 0 ? [withProcessArgs(...opts.args)] : []),
    ...(opts.extra ?? []),
  ];
}

describe("default spec", () => {
  it("equals ctr oci spec (namespace default, no id)", () => {
    expect(generateDefaultSpec("", "default")).toEqual(fixture("oci-spec"));
  });

  it("is a valid runtime spec once it has args", async () => {
    const spec = await generateSpec({ id: "c1", namespace: "default" }, withProcessArgs("sh"));
    expect(validateRuntimeSpec(spec).problems).toEqual([]);
  });

  it("puts the container in /<namespace>/<id>", () => {
    expect(generateDefaultSpec("c1", "ns").linux?.cgroupsPath).toBe("/ns/c1");
  });

  it("refuses an empty namespace", () => {
    expect(() => generateDefaultSpec("c1", "")).toThrow(/namespace/);
  });
});

describe("ctr run equivalents", () => {
  it("plain run with args equals containerd's container spec", async () => {
    const spec = await generateSpec({ id: "g1", namespace: "default" }, ...ctrRun({ args: ["echo", "hi"] }));
    expect(spec).toEqual(fixture("run-plain"));
    // byte for byte, key order included, once in Go's field order
    expect(JSON.stringify(inGoFieldOrder(spec))).toBe(JSON.stringify(fixture("run-plain")));
  });

  it("--env, --mount, --net-host, -t, --cwd, --memory-limit, --read-only, annotations", async () => {
    const spec = await generateSpec(
      { id: "g2", namespace: "default" },
      ...ctrRun({
        env: ["A=b", "PATH=/x"],
        mounts: [{ destination: "/mnt", type: "bind", source: "/tmp", options: ["rbind", "ro"] }],
        args: ["sh"],
        extra: [
          withRootFSReadonly,
          withProcessCwd("/tmp"),
          withTTY,
          withHostNetwork("vm"),
          withMemoryLimit(100000000),
          (s) => {
            s.annotations = { x: "y" };
          },
        ],
      }),
    );
    expect(spec).toEqual(fixture("run-opts"));
    expect(JSON.stringify(inGoFieldOrder(spec))).toBe(JSON.stringify(fixture("run-opts")));
  });

  it("--seccomp gives containerd's default profile (amd64, kernel >= 4.8)", async () => {
    const spec = await generateSpec(
      { id: "g3", namespace: "default" },
      ...ctrRun({ extra: [withDefaultSeccomp({ arch: "amd64", kernelRelease: "6.1.0" })] }),
    );
    expect(spec).toEqual(fixture("run-seccomp"));
  });
});

describe("seccomp profile", () => {
  it("with CAP_SYS_ADMIN allows clone and clone3 without the namespace filter", () => {
    const spec = generateDefaultSpec("c", "default");
    spec.process?.capabilities?.bounding?.push("CAP_SYS_ADMIN");
    const profile = defaultSeccompProfile(spec, { arch: "amd64", kernelRelease: "6.1" });
    const clone = profile.syscalls?.filter((s) => s.names.includes("clone")) ?? [];
    expect(clone).toHaveLength(1);
    expect(clone[0]?.args).toBeUndefined();
    expect(profile.syscalls?.some((s) => s.names.includes("clone3") && s.action === "SCMP_ACT_ERRNO")).toBe(false);
  });

  it("does not allow ptrace on kernels before 4.8 and filters clone's second argument on s390x", () => {
    const profile = defaultSeccompProfile(generateDefaultSpec("c", "default"), {
      arch: "s390x",
      kernelRelease: "4.4.0",
    });
    expect(profile.syscalls?.some((s) => s.names.length === 1 && s.names[0] === "ptrace")).toBe(false);
    expect(profile.architectures).toEqual(["SCMP_ARCH_S390", "SCMP_ARCH_S390X"]);
    expect(profile.syscalls?.find((s) => s.names[0] === "clone")?.args?.[0]?.index).toBe(1);
  });
});

describe("privileged", () => {
  it("has this process's capabilities, no masks, writable sysfs, all devices", async () => {
    const spec = await generateSpec({ id: "p", namespace: "default" }, withDefaultUnixDevices, withPrivileged);
    expect(spec.process?.capabilities?.bounding).toEqual(currentCapabilities());
    expect(spec.linux?.maskedPaths).toBeUndefined();
    expect(spec.linux?.readonlyPaths).toBeUndefined();
    expect(spec.mounts?.find((m) => m.type === "sysfs")?.options).toContain("rw");
    expect(spec.linux?.resources?.devices).toEqual([{ allow: true, access: "rwm" }]);
    expect(spec.linux?.devices?.some((d) => d.path === "/dev/null" && d.major === 1 && d.minor === 3)).toBe(true);
    expect(spec.linux?.devices?.some((d) => d.path.startsWith("/dev/pts/"))).toBe(false);
  });

  it("reads capability names from CapEff in bit order", () => {
    expect(currentCapabilities("CapEff:\t0000000000200001\n")).toEqual(["CAP_CHOWN", "CAP_SYS_ADMIN"]);
  });
});

describe("env merging", () => {
  it("replaces in place, appends, and removes bare keys", () => {
    expect(replaceOrAppendEnv(["A=1", "B=2", "C=3"], ["B=x", "D=4", "A"])).toEqual(["B=x", "C=3", "D=4"]);
  });
});

describe("users from the rootfs", () => {
  let root: string;
  let upper: string;
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), "oci-spec-user-"));
    await mkdir(join(root, "etc"));
    await writeFile(
      join(root, "etc/passwd"),
      "root:x:0:0:root:/root:/bin/sh\n# comment\nalice:x:1000:1000::/home/alice:/bin/sh\nbob:x:1001:1001::/:/bin/sh\n",
    );
    await writeFile(
      join(root, "etc/group"),
      "root:x:0:\nwheel:x:10:alice,root\nalice:x:1000:alice\nstaff:x:50:alice\n",
    );
    upper = await mkdtemp(join(tmpdir(), "oci-spec-upper-"));
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
    await rm(upper, { recursive: true, force: true });
  });

  it("resolves a name to its uid, gid and supplementary groups (primary first)", async () => {
    expect(await resolveUser("alice", directoryRootfs(root))).toEqual({
      uid: 1000,
      gid: 1000,
      additionalGids: [1000, 10, 50],
    });
  });

  it("resolves user:group by name and by number", async () => {
    expect(await resolveUser("alice:staff", directoryRootfs(root))).toEqual({
      uid: 1000,
      gid: 50,
      additionalGids: [10, 50],
    });
    expect(await resolveUser("1001:7", directoryRootfs(root))).toEqual({ uid: 1001, gid: 7, additionalGids: [7] });
  });

  it("runs an unknown numeric uid with gid 0, and refuses unknown names", async () => {
    expect(await resolveUser("4242", directoryRootfs(root))).toEqual({ uid: 4242, gid: 0, additionalGids: [0] });
    await expect(resolveUser("mallory", directoryRootfs(root))).rejects.toThrow("no users found");
    await expect(resolveUser("alice:nogroup", directoryRootfs(root))).rejects.toThrow("no groups found");
    await expect(resolveUser("a:b:c", directoryRootfs(root))).rejects.toThrow("invalid USER value a:b:c");
  });

  it("image config user and root's groups land in the spec", async () => {
    const withUserSpec = await generateSpec(
      { id: "u", namespace: "default", rootfs: directoryRootfs(root) },
      withImageConfig({ User: "bob", Cmd: ["id"] }),
    );
    expect(withUserSpec.process?.user).toEqual({ uid: 1001, gid: 1001, additionalGids: [1001] });
    const rootSpec = await generateSpec(
      { id: "u", namespace: "default", rootfs: directoryRootfs(root) },
      withImageConfig({}),
    );
    expect(rootSpec.process?.user).toEqual({ uid: 0, gid: 0, additionalGids: [0, 10] });
    expect(rootSpec.process?.args).toEqual([]);
    expect(rootSpec.process?.env).toEqual(["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]);
  });

  it("an explicit --user overrides the image's", async () => {
    const spec = await generateSpec(
      { id: "u", namespace: "default", rootfs: directoryRootfs(root) },
      withImageConfig({ User: "bob" }),
      withUser("alice"),
    );
    expect(spec.process?.user.uid).toBe(1000);
  });

  it("symlinks cannot leave the rootfs", async () => {
    const evil = await mkdtemp(join(tmpdir(), "oci-spec-evil-"));
    try {
      await mkdir(join(evil, "etc"));
      // /etc/passwd -> ../../../../etc/passwd resolves inside the root, where there is none
      await symlink("../../../../../../etc/shadow", join(evil, "etc/passwd"));
      await expect(resolveUser("root", directoryRootfs(evil))).rejects.toThrow(/no such file/);
      expect(await directoryRootfs(evil).readText("/../../../etc/hostname")).toBeUndefined();
    } finally {
      await rm(evil, { recursive: true, force: true });
    }
  });

  it("an upper layer's file wins over the lower's", async () => {
    await mkdir(join(upper, "etc"), { recursive: true });
    await writeFile(join(upper, "etc/passwd"), "root:x:0:0::/:/bin/sh\ncarol:x:7:7::/:/bin/sh\n");
    const rootfs = layeredRootfs([upper, root]);
    expect(await resolveUser("carol", rootfs)).toMatchObject({ uid: 7, gid: 7 });
    await expect(resolveUser("alice", rootfs)).rejects.toThrow("no users found");
    expect(await rootfs.readText("/etc/group")).toContain("wheel");
  });
});

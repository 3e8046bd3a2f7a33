import { isInvalidArgument } from "@berth/errdefs";
import { describe, expect, it } from "vitest";
import { assertValidRuntimeSpec, validateRuntimeSpec, type Problem, type Spec } from "../src/index.js";

const paths = (problems: readonly Problem[]) => problems.map((p) => p.path);

const spec = (): Spec => ({
  ociVersion: "1.2.0",
  process: {
    terminal: false,
    user: { uid: 0, gid: 0, additionalGids: [10] },
    args: ["sh", "-c", "true"],
    env: ["PATH=/usr/bin:/bin"],
    cwd: "/",
    capabilities: { bounding: ["CAP_CHOWN"], effective: ["CAP_CHOWN"] },
    rlimits: [{ type: "RLIMIT_NOFILE", hard: 1024, soft: 1024 }],
    noNewPrivileges: true,
    oomScoreAdj: 0,
    ioPriority: { class: "IOPRIO_CLASS_BE", priority: 4 },
    execCPUAffinity: { initial: "0" },
  },
  root: { path: "rootfs", readonly: true },
  hostname: "box",
  mounts: [{ destination: "/proc", type: "proc", source: "proc" }],
  hooks: { createRuntime: [{ path: "/usr/bin/hook", timeout: 5 }] },
  annotations: { a: "b" },
  linux: {
    uidMappings: [{ containerID: 0, hostID: 100000, size: 65536 }],
    sysctl: { "net.ipv4.ip_forward": "1" },
    resources: {
      devices: [{ allow: false, access: "rwm" }],
      memory: { limit: -1, swappiness: 60 },
      cpu: { shares: 1024, quota: -1, period: 100000, cpus: "0-3" },
      pids: { limit: 100 },
      blockIO: { weight: 500, weightDevice: [{ major: 8, minor: 0, weight: 100 }] },
      hugepageLimits: [{ pageSize: "2MB", limit: 0 }],
      unified: { "memory.high": "max" },
    },
    cgroupsPath: "/berth/c1",
    namespaces: [{ type: "pid" }, { type: "network", path: "/var/run/netns/x" }, { type: "mount" }],
    devices: [{ path: "/dev/fuse", type: "c", major: 10, minor: 229, fileMode: 0o666 }],
    seccomp: {
      defaultAction: "SCMP_ACT_ERRNO",
      defaultErrnoRet: 1,
      architectures: ["SCMP_ARCH_X86_64"],
      syscalls: [{ names: ["read"], action: "SCMP_ACT_ALLOW", args: [{ index: 0, value: 1, op: "SCMP_CMP_EQ" }] }],
    },
    rootfsPropagation: "private",
    maskedPaths: ["/proc/kcore"],
    readonlyPaths: ["/proc/sys"],
    personality: { domain: "LINUX" },
    timeOffsets: { monotonic: { secs: 10 } },
  },
});

describe("validateRuntimeSpec", () => {
  it("accepts a complete linux spec", () => {
    expect(validateRuntimeSpec(spec())).toEqual({ ok: true, problems: [] });
  });

  it("accepts a windows spec with commandLine instead of args", () => {
    const s: Spec = {
      ociVersion: "1.2.0",
      process: { user: { username: "ContainerUser" }, commandLine: "cmd /c echo", cwd: "C:\\" },
      windows: { layerFolders: ["C:\\layers\\1"] },
    };
    expect(validateRuntimeSpec(s).ok).toBe(true);
  });

  it("reports every problem with its path", () => {
    // biome-ignore lint/suspicious/noExplicitAny: deliberately builds an invalid spec
    const s = spec() as unknown as { [k: string]: any };
    s.ociVersion = "v1";
    s.process.args = [];
    s.process.cwd = "relative";
    s.process.capabilities.bounding = ["chown"];
    s.process.rlimits.push({ type: "RLIMIT_NOFILE", hard: 1, soft: 2 });
    s.process.oomScoreAdj = 2000;
    s.process.ioPriority = { class: "IOPRIO_CLASS_X", priority: 9 };
    delete s.process.user;
    s.hooks.poststop = [{ path: "hook", timeout: 0 }];
    s.linux.namespaces.push({ type: "pid" }, { type: "bogus" });
    s.linux.resources.memory.swappiness = 101;
    s.linux.resources.blockIO.weightDevice = [{ major: 8, minor: 0 }];
    s.linux.resources.pids = {};
    s.linux.devices.push({ path: "/dev/x", type: "b" });
    s.linux.seccomp.syscalls[0].names = [];
    s.linux.seccomp.syscalls[0].args[0].op = "EQ";
    s.linux.seccomp.listenerMetadata = "m";
    s.linux.rootfsPropagation = "rprivate";
    s.linux.maskedPaths = ["proc/kcore"];
    s.linux.timeOffsets = { realtime: { secs: 1 } };

    const { ok, problems } = validateRuntimeSpec(s);
    expect(ok).toBe(false);
    expect(paths(problems)).toEqual([
      "$.ociVersion",
      "$.process.user",
      "$.process.cwd",
      "$.process.capabilities.bounding[0]",
      "$.process.rlimits[1].soft",
      "$.process.rlimits[1]",
      "$.process.oomScoreAdj",
      "$.process.ioPriority.class",
      "$.process.ioPriority.priority",
      "$.hooks.poststop[0].path",
      "$.hooks.poststop[0].timeout",
      "$.linux.timeOffsets.realtime",
      "$.linux.resources.memory.swappiness",
      "$.linux.resources.pids.limit",
      "$.linux.resources.blockIO.weightDevice[0]",
      "$.linux.namespaces[3]",
      "$.linux.namespaces[4].type",
      "$.linux.devices[1].major",
      "$.linux.devices[1].minor",
      "$.linux.seccomp.syscalls[0].names",
      "$.linux.seccomp.syscalls[0].args[0].op",
      "$.linux.seccomp.listenerMetadata",
      "$.linux.rootfsPropagation",
      "$.linux.maskedPaths[0]",
      "$.process.args",
    ]);
    const byPath = new Map(problems.map((p) => [p.path, p.message]));
    expect(byPath.get("$.linux.namespaces[3]")).toBe("duplicate of $.linux.namespaces[0] (pid)");
    expect(byPath.get("$.process.args")).toBe("must have at least one entry");
    expect(byPath.get("$.process.oomScoreAdj")).toBe("must be between -1000 and 1000, got 2000");
  });

  it("requires ociVersion and checks top-level types", () => {
    expect(validateRuntimeSpec({ mounts: {}, annotations: [] }).problems).toEqual([
      { path: "$.ociVersion", message: "is required" },
      { path: "$.mounts", message: "must be an array, got object" },
      { path: "$.annotations", message: "must be an object, got array" },
    ]);
  });

  it("assertValidRuntimeSpec throws InvalidArgument", () => {
    expect(() => assertValidRuntimeSpec(spec())).not.toThrow();
    let caught: unknown;
    try {
      assertValidRuntimeSpec({ ociVersion: 1 });
    } catch (err) {
      caught = err;
    }
    expect(isInvalidArgument(caught)).toBe(true);
    expect((caught as Error).message).toContain(
      "invalid runtime spec (1 problem: $.ociVersion: must be a string, got number)",
    );
  });
});

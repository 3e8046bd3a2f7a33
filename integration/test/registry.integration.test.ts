/**
 * Pull and push with a real registry: Debian's docker-registry on 127.0.0.1 with a private config. berth pushes
 * an imported busybox image and a real containerd pulls it back with the same digests; berth pulls it (with
 * unpack) into berthd; the real `ctr images pull --plain-http` works against berthd.
 */
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, test } from "vitest";
import { type BuiltArchive, busyboxSkipReason, writeOciArchive } from "../src/busybox.js";
import {
  type Berthd,
  type Containerd,
  berthWith,
  containerdSkipReason,
  contentDigests,
  ctrWith,
  normalise,
  startBerthd,
  startContainerd,
  stopAll,
  stopClients,
  tempDir,
} from "../src/harness.js";
import { type Registry, registrySkipReason, startRegistry, stopRegistries } from "./registry-harness.js";

const reason = containerdSkipReason() ?? busyboxSkipReason() ?? registrySkipReason();
const NS = "registry-e2e";
const LOCAL = "docker.io/library/busybox:oci";

describe.skipIf(reason !== undefined)(
  reason ? `registry pull/push (skipped: ${reason})` : "registry pull/push with docker-registry",
  () => {
    let berthd: Berthd;
    let containerd: Containerd;
    let registry: Registry;
    let oci: BuiltArchive;
    let remote: string;

    beforeAll(async () => {
      let dir: string;
      [berthd, containerd, registry, dir] = await Promise.all([
        startBerthd(),
        startContainerd(),
        startRegistry(),
        tempDir(),
      ]);
      oci = await writeOciArchive(join(dir, "busybox-oci.tar"), LOCAL);
      remote = `${registry.host}/library/busybox:latest`;
    }, 60_000);
    afterEach(stopClients);
    afterAll(async () => {
      await stopRegistries();
      await stopAll();
    });

    const berth = (ns: string, ...args: string[]) =>
      berthWith(berthd.socket, ["-n", ns, ...args], { timeoutMs: 120_000 });
    const ctrOn = (socket: string, ns: string, ...args: string[]) =>
      ctrWith(socket, ["-n", ns, ...args], { timeoutMs: 120_000 });
    const imageTarget = async (socket: string, ns: string, name: string) => {
      const ls = await ctrOn(socket, ns, "images", "ls", `name==${name}`);
      expect(ls.code, ls.stderr).toBe(0);
      const row = normalise(ls.stdout)[1]?.split(" ");
      return row?.[2];
    };

    test("berth images push of an imported image; a real containerd pulls the same digests", async () => {
      const imp = await berth(NS, "images", "import", "--all-platforms", "--no-unpack", oci.path);
      expect(imp.code, imp.stderr).toBe(0);
      const push = await berth(NS, "images", "push", "--plain-http", remote, LOCAL);
      expect(push.code, push.stderr).toBe(0);
      expect(push.stdout).toContain(`pushed ${oci.target}`);
      // pushing again uploads nothing: every blob is found by HEAD
      const again = await berth(NS, "images", "push", "--plain-http", remote, LOCAL);
      expect(again.code, again.stderr).toBe(0);
      expect(again.stdout).toContain("(0 uploaded");

      const pull = await ctrOn(containerd.socket, NS, "images", "pull", "--plain-http", remote);
      expect(pull.code, pull.stderr + pull.stdout).toBe(0);
      expect(await imageTarget(containerd.socket, NS, remote)).toBe(oci.target);
      const check = await ctrOn(containerd.socket, NS, "images", "check", `name==${remote}`);
      expect(check.stdout).toContain("complete");
      // containerd fetched the host platform's manifest, config and layer: all blobs berth pushed
      const theirs = await contentDigests(containerd.socket, NS);
      for (const d of theirs) expect(oci.blobs).toContain(d);
      expect(theirs.length).toBe(4);
    });

    test("berth images pull --plain-http fetches, verifies, registers and unpacks; a second pull fetches nothing", async () => {
      const ns = "registry-pull";
      const pull = await berth(ns, "images", "pull", "--plain-http", remote);
      expect(pull.code, pull.stderr).toBe(0);
      expect(pull.stdout).toContain(`${remote}: resolved ${oci.target}`);
      expect(pull.stdout).toMatch(/fetched 4 blobs/);
      expect(pull.stdout).toMatch(
        /unpacked sha256:[0-9a-f]{64} into overlayfs: sha256:[0-9a-f]{64} \(1 layers applied\)/,
      );
      expect(await imageTarget(berthd.socket, ns, remote)).toBe(oci.target);
      // the same content as containerd's pull of the same image
      expect((await contentDigests(berthd.socket, ns)).sort()).toEqual(
        (await contentDigests(containerd.socket, NS)).sort(),
      );
      const check = await ctrOn(berthd.socket, ns, "images", "check", `name==${remote}`);
      expect(check.code, check.stderr).toBe(0);
      expect(check.stdout).toContain("complete");
      // the rootfs snapshot is committed under the top chain ID
      const chain = /into overlayfs: (sha256:[0-9a-f]{64})/.exec(pull.stdout)?.[1];
      const snaps = await ctrOn(berthd.socket, ns, "snapshots", "ls");
      expect(snaps.stdout).toContain(chain);
      expect(normalise(snaps.stdout).find((l) => l.startsWith(chain ?? "-"))).toMatch(/Committed$/);
      // no lease or ingest left behind
      const leases = await ctrOn(berthd.socket, ns, "leases", "ls");
      expect(normalise(leases.stdout)).toHaveLength(1);
      const active = await ctrOn(berthd.socket, ns, "content", "active");
      expect(normalise(active.stdout)).toHaveLength(1);

      const again = await berth(ns, "images", "pull", "--plain-http", remote);
      expect(again.code, again.stderr).toBe(0);
      expect(again.stdout).toMatch(/fetched 0 blobs \(0 B\), 4 already present/);
      expect(again.stdout).toContain("(0 layers applied)");
    });

    test("berth run --rm of the pulled image prints hi", async () => {
      const fifoDir = await tempDir("berth-e2e-fifo-");
      const r = await berthWith(
        berthd.socket,
        ["-n", "registry-pull", "run", "--rm", "--fifo-dir", fifoDir, remote, "pulled-hi", "sh", "-c", "echo hi"],
        { timeoutMs: 60_000 },
      );
      expect(r.stderr).toBe("");
      expect(r.stdout).toBe("hi\n");
      expect(r.code).toBe(0);
    });

    test("push of a pulled image to another repository mounts its blobs; --chunk-size uploads in PATCH chunks", async () => {
      const platform = process.arch === "arm64" ? "linux/arm64/v8" : "linux/amd64";
      const mountTo = `${registry.host}/other/busybox:mounted`;
      const push = await berth(
        "registry-pull",
        "images",
        "push",
        "--plain-http",
        "--platform",
        platform,
        mountTo,
        remote,
      );
      expect(push.code, push.stderr).toBe(0);
      expect(push.stdout).toMatch(/\(0 uploaded, 0 B, 2 mounted/);
      const manifest = /pushed (sha256:[0-9a-f]{64})/.exec(push.stdout)?.[1];
      expect(oci.blobs).toContain(manifest);

      const chunkTo = `${registry.host}/chunked/busybox:v1`;
      const chunked = await berth(NS, "images", "push", "--plain-http", "--chunk-size", "65536", chunkTo, LOCAL);
      expect(chunked.code, chunked.stderr).toBe(0);
      expect(chunked.stdout).toMatch(/\(5 uploaded, .*, 0 mounted/);
      // the registry's access log shows the chunks (the ~1 MiB layer in 64 KiB PATCHes)
      const patches = registry.log().match(/"PATCH \/v2\/chunked\/busybox\/blobs\/uploads\//g) ?? [];
      expect(patches.length).toBeGreaterThan(10);
      // both read back by the real containerd with the digests berth pushed
      for (const [ref, digest] of [
        [mountTo, manifest],
        [chunkTo, oci.target],
      ] as const) {
        const pull = await ctrOn(containerd.socket, "registry-readback", "images", "pull", "--plain-http", ref);
        expect(pull.code, pull.stderr + pull.stdout).toBe(0);
        expect(await imageTarget(containerd.socket, "registry-readback", ref)).toBe(digest);
      }
    });

    test("berth images fetch --all-platforms gets every platform and does not unpack", async () => {
      const ns = "registry-fetch";
      const res = await berth(ns, "images", "fetch", "--all-platforms", "--plain-http", remote);
      expect(res.code, res.stderr).toBe(0);
      expect((await contentDigests(berthd.socket, ns)).sort()).toEqual([...oci.blobs].sort());
      const snaps = await ctrOn(berthd.socket, ns, "snapshots", "ls");
      expect(normalise(snaps.stdout)).toHaveLength(1);
    });

    test("ctr images pull --plain-http against berthd works as against containerd", async () => {
      const ns = "registry-ctr";
      const pull = await ctrOn(berthd.socket, ns, "images", "pull", "--plain-http", remote);
      expect(pull.code, pull.stderr + pull.stdout).toBe(0);
      expect(pull.stdout).toContain("done");
      expect(await imageTarget(berthd.socket, ns, remote)).toBe(oci.target);
      expect((await contentDigests(berthd.socket, ns)).sort()).toEqual(
        (await contentDigests(containerd.socket, NS)).sort(),
      );
      const check = await ctrOn(berthd.socket, ns, "images", "check", `name==${remote}`);
      expect(check.stdout).toContain("complete");
      const snaps = await ctrOn(berthd.socket, ns, "snapshots", "ls");
      expect(normalise(snaps.stdout).filter((l) => l.endsWith("Committed"))).toHaveLength(1);
    });

    test("--hosts-dir: certs.d/<host>/hosts.toml maps a name to the registry, past a dead mirror", async () => {
      const dir = await tempDir("berth-e2e-certsd-");
      await mkdir(join(dir, "mirror.example"));
      await writeFile(
        join(dir, "mirror.example", "hosts.toml"),
        `server = "http://${registry.host}"\n[host."http://127.0.0.1:1"]\n  capabilities = ["pull", "resolve"]\n`,
      );
      const ns = "registry-hosts";
      const name = "mirror.example/library/busybox:latest";
      const res = await berth(ns, "images", "pull", "--no-unpack", "--hosts-dir", dir, name);
      expect(res.code, res.stderr).toBe(0);
      expect(res.stdout).toContain(`${name}: resolved ${oci.target}`);
      expect(await imageTarget(berthd.socket, ns, name)).toBe(oci.target);
      // without the file the name means an https registry that does not exist
      const without = await berth(ns, "images", "pull", "--no-unpack", "mirror.example/library/busybox:other");
      expect(without.code).toBe(1);
      expect(without.stderr).toMatch(/unavailable/);
    });

    test("a missing tag is NotFound and a bad reference is InvalidArgument, with nothing registered", async () => {
      const ns = "registry-bad";
      const missing = await berth(ns, "images", "pull", "--plain-http", `${registry.host}/library/busybox:nope`);
      expect(missing.code).toBe(1);
      expect(missing.stderr).toMatch(/busybox:nope: not found/);
      const bad = await berth(ns, "images", "pull", "--plain-http", `${registry.host}/Library/../x:latest`);
      expect(bad.code).toBe(1);
      expect(bad.stderr).toMatch(/invalid reference/);
      const ls = await ctrOn(berthd.socket, ns, "images", "ls", "-q");
      expect(ls.stdout).toBe("");
    });
  },
);

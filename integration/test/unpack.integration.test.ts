/**
 * Unpack with the real `ctr` (Debian's containerd 1.6.20 client) against berthd: `ctr images import` unpacks
 * client-side through the Diff and Snapshots services; then `ctr snapshots ls|tree|prepare|mounts|commit|rm|
 * usage` and `ctr images mount|unmount` on the result, with overlayfs and with native. The same image is also
 * unpacked by a private real containerd and the trees compared (per layer and merged). `berth images import`
 * and `berth images mount|unmount` do the same through the unpack library.
 */
import { execFile } from "node:child_process";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, afterEach, beforeAll, describe, expect, test } from "vitest";
import {
  type Berthd,
  type Containerd,
  berthWith,
  containerdSkipReason,
  ctr,
  ctrWith,
  startBerthd,
  startContainerd,
  stopAll,
  stopClients,
  tempDir,
} from "../src/harness.js";
import { type ImageArchive, chainIDs, featureLayers, writeImageArchive } from "./unpack-layers.js";
import { describeTree } from "./unpack-tree.js";

const sh = promisify(execFile);
const reason = containerdSkipReason();
const NS = "unpack-e2e";
const NAME = "docker.io/library/unpack-features:latest";

/** `ctr snapshots mounts` prints one `mount -t TYPE SOURCE TARGET -o OPTIONS` line per mount. */
function parseMountLine(line: string): { type: string; source: string; options: string[] } {
  const m = /^mount -t (\S+) (\S+) \S+ -o (\S+)$/.exec(line.trim());
  if (!m) throw new Error(`not a mount line: ${line}`);
  return { type: m[1]!, source: m[2]!, options: m[3]!.split(",") };
}

/** The directories of a view's mounts: overlay lowerdirs (top first), or the bind source. */
function layerDirs(mountLine: string): string[] {
  const m = parseMountLine(mountLine);
  if (m.type === "bind") return [m.source];
  const lower = m.options.find((o) => o.startsWith("lowerdir="));
  if (!lower) throw new Error(`no lowerdir in ${mountLine}`);
  return lower.slice("lowerdir=".length).split(":");
}

describe.skipIf(reason !== undefined)(
  reason ? `unpack with ctr (skipped: ${reason})` : "unpack with ctr on berthd (and containerd)",
  () => {
    let berthd: Berthd;
    let containerd: Containerd;
    let dir: string;
    let image: ImageArchive;
    let chain: string[];

    beforeAll(async () => {
      [berthd, containerd, dir] = await Promise.all([startBerthd(), startContainerd(), tempDir("berth-unpack-")]);
      image = await writeImageArchive(join(dir, "features.tar"), NAME, featureLayers());
      chain = chainIDs(image.diffIDs);
    }, 60_000);
    afterEach(stopClients);
    afterAll(stopAll);

    const ctrOn = (socket: string, ...args: string[]) => ctr(socket, "-n", NS, ...args);

    for (const snapshotter of ["overlayfs", "native"] as const) {
      describe(snapshotter, () => {
        const sn = (...args: string[]) => ctrOn(berthd.socket, "snapshots", "--snapshotter", snapshotter, ...args);

        test("ctr images import unpacks the chain; snapshots ls and tree show it", async () => {
          const imp = await ctrWith(
            berthd.socket,
            ["-n", NS, "images", "import", "--snapshotter", snapshotter, image.path],
            { timeoutMs: 60_000 },
          );
          expect(imp.stderr).toBe("");
          expect(imp.code).toBe(0);
          expect(imp.stdout).toContain(`unpacking ${NAME} (${image.manifest})...done`);

          const ls = await sn("ls");
          expect(ls.code).toBe(0);
          const rows = ls.stdout
            .trim()
            .split("\n")
            .slice(1)
            .map((l) => l.trim().split(/\s+/));
          // exactly the three committed layers, parents as the chain: no extract-* snapshot left behind
          expect(rows.map((r) => r.join(" ")).sort()).toEqual(
            [`${chain[0]} Committed`, `${chain[1]} ${chain[0]} Committed`, `${chain[2]} ${chain[1]} Committed`].sort(),
          );

          const tree = await sn("tree");
          expect(tree.code).toBe(0);
          const lines = tree.stdout.split("\n").filter((l) => l.trim() !== "");
          const at = (c: string) => lines.findIndex((l) => l.includes(c));
          expect(at(chain[0]!)).toBeGreaterThanOrEqual(0);
          expect(at(chain[1]!)).toBeGreaterThan(at(chain[0]!));
          expect(at(chain[2]!)).toBeGreaterThan(at(chain[1]!));
          expect(lines[at(chain[2]!)]).toMatch(/\\_ sha256:/);

          // the config blob keeps the snapshots (what the GC follows)
          const info = await ctrOn(berthd.socket, "content", "ls");
          const cfgLine = info.stdout.split("\n").find((l) => l.startsWith(image.config));
          expect(cfgLine).toContain(`containerd.io/gc.ref.snapshot.${snapshotter}=${chain[2]}`);
        });

        test("prepare, mounts (run), commit, usage; rm of a parent fails with FailedPrecondition", async () => {
          const key = `k1-${snapshotter}`;
          const prep = await sn("prepare", key, chain[2]!);
          expect(prep.stderr).toBe("");
          expect(prep.code).toBe(0);
          const target = join(dir, `mnt-${snapshotter}`);
          await mkdir(target, { recursive: true });
          const mounts = await sn("mounts", target, key);
          expect(mounts.code).toBe(0);
          const line = mounts.stdout.trim();
          expect(line).toMatch(snapshotter === "overlayfs" ? /^mount -t overlay overlay / : /^mount -t bind /);
          await sh("sh", ["-c", line]);
          try {
            const { stdout } = await sh(join(target, "bin/busybox"), ["ls", join(target, "bin")]);
            expect(stdout.split(/\s+/)).toEqual(expect.arrayContaining(["busybox", "sh"]));
            const { stdout: motd } = await sh("cat", [join(target, "etc/motd")]);
            expect(motd).toBe("replaced\n");
            await expect(sh("ls", [join(target, "etc/secret")])).rejects.toThrow();
            await sh("sh", ["-c", `echo written > ${join(target, "etc/new")}`]);
          } finally {
            await sh("umount", [target]);
          }

          const commit = await sn("commit", `c1-${snapshotter}`, key);
          expect(commit.stderr).toBe("");
          expect(commit.code).toBe(0);

          const usage = await sn("usage");
          expect(usage.code).toBe(0);
          expect(usage.stdout).toContain(chain[2]);
          expect(usage.stdout).toContain(`c1-${snapshotter}`);

          const rm = await sn("rm", chain[1]!);
          expect(rm.code).not.toBe(0);
          expect(rm.stderr).toMatch(/failed precondition/i);
          expect((await sn("rm", `c1-${snapshotter}`)).code).toBe(0);
          expect((await sn("ls")).stdout).not.toContain(`c1-${snapshotter}`);
        });

        test("ctr images mount and unmount", async () => {
          const target = join(dir, `imgmnt-${snapshotter}`);
          await mkdir(target, { recursive: true });
          // ctr 1.6 images mount reads the snapshotter from a global flag it does not have: always overlayfs
          const m = await ctrWith(berthd.socket, ["-n", NS, "images", "mount", NAME, target], { timeoutMs: 60_000 });
          expect(m.stderr).toBe("");
          expect(m.code).toBe(0);
          expect(m.stdout.trim().split("\n")).toEqual([chain[2], target]);
          try {
            const { stdout } = await sh("ls", [join(target, "bin")]);
            expect(stdout.split(/\s+/)).toEqual(expect.arrayContaining(["busybox", "sh"]));
          } finally {
            const u = await ctrOn(berthd.socket, "images", "unmount", "--rm", target);
            expect(u.stderr).toBe("");
            expect(u.code).toBe(0);
          }
          expect((await ctrOn(berthd.socket, "snapshots", "ls")).stdout).not.toContain(target);
          expect((await ctrOn(berthd.socket, "leases", "ls")).stdout).not.toContain(target);
        });

        test("the layers and the merged tree are the same as containerd's", async () => {
          const imp = await ctrWith(
            containerd.socket,
            ["-n", NS, "images", "import", "--snapshotter", snapshotter, image.path],
            { timeoutMs: 60_000 },
          );
          expect(imp.code).toBe(0);
          const dirsOf = async (socket: string) => {
            // ctr's view joins no lease, so a collection still due from the import (its lease ended) would
            // remove it: run that collection now, and wait for it, before taking the view
            const lease = await ctrOn(socket, "leases", "create");
            expect(lease.code).toBe(0);
            const gc = await ctrOn(socket, "leases", "rm", "--sync", lease.stdout.trim());
            expect({ gc: gc.code, stderr: gc.stderr }).toEqual({ gc: 0, stderr: "" });
            const key = `view-${snapshotter}`;
            const v = await ctrOn(socket, "snapshots", "--snapshotter", snapshotter, "view", key, chain[2]!);
            expect({ view: v.code, stderr: v.stderr }).toEqual({ view: 0, stderr: "" });
            const mounts = await ctrOn(socket, "snapshots", "--snapshotter", snapshotter, "mounts", "/x", key);
            expect({ mounts: mounts.code, stderr: mounts.stderr }).toEqual({ mounts: 0, stderr: "" });
            return { line: mounts.stdout.trim(), dirs: layerDirs(mounts.stdout.trim()) };
          };
          const ours = await dirsOf(berthd.socket);
          const theirs = await dirsOf(containerd.socket);
          expect(ours.dirs.length).toBe(theirs.dirs.length);
          // each layer's own directory: overlay whiteouts (0/0 char devices, opaque xattrs) included
          for (let i = 0; i < ours.dirs.length; i++) {
            expect({ layer: i, tree: describeTree(ours.dirs[i]!) }).toEqual({
              layer: i,
              tree: describeTree(theirs.dirs[i]!),
            });
          }
          const top = describeTree(ours.dirs[0]!);
          if (snapshotter === "overlayfs") {
            // what the comparison covered: whiteouts as 0/0 devices, an opaque dir, implicit parents with the
            // attributes of the lower layer's directory
            expect(top).toEqual(
              expect.arrayContaining([
                expect.stringMatching(/^etc\/secret char 0 0:0 dev=0,0$/),
                expect.stringMatching(/^var\/gone char 0 0:0 dev=0,0$/),
                expect.stringMatching(/^var\/opaque dir 755 0:0 xattrs\[trusted\.overlay\.opaque="y"\]$/),
                expect.stringMatching(/^opt dir 750 1000:100$/),
              ]),
            );
          } else {
            expect(top).toEqual(
              expect.arrayContaining([
                expect.stringMatching(/^opt\/app\/cap file 755 0:0 .*user\.berth\.test="value-1"/),
              ]),
            );
            expect(top.some((l) => l.startsWith("etc/secret "))).toBe(false);
          }
          if (snapshotter === "overlayfs") {
            // the merged view, mounted from each daemon's directories
            const merged = async (line: string, name: string) => {
              const target = join(dir, name);
              await mkdir(target, { recursive: true });
              const m = parseMountLine(line);
              await sh("mount", ["-t", m.type, m.source, target, "-o", m.options.join(",")]);
              try {
                return describeTree(target);
              } finally {
                await sh("umount", [target]);
              }
            };
            const a = await merged(ours.line, "merged-berth");
            const b = await merged(theirs.line, "merged-containerd");
            expect(a).toEqual(b);
            expect(a.some((l) => l.startsWith("opt/app/deep/nested/file file"))).toBe(true);
            expect(a.some((l) => l.startsWith("etc/secret "))).toBe(false);
          }
        });
      });
    }

    test("berth images import unpacks by default; --no-unpack skips; berth images mount/unmount", async () => {
      const ns = "unpack-berth";
      const imp = await berthWith(berthd.socket, ["-n", ns, "images", "import", "--no-progress", image.path], {
        timeoutMs: 60_000,
      });
      expect(imp.stderr).toBe("");
      expect(imp.code).toBe(0);
      expect(imp.stdout).toContain(`unpacking ${NAME} (${image.manifest})...done`);
      expect((await ctr(berthd.socket, "-n", ns, "snapshots", "ls")).stdout).toContain(chain[2]);

      const other = "unpack-berth-nounpack";
      const noUnpack = await berthWith(
        berthd.socket,
        ["-n", other, "images", "import", "--no-unpack", "--no-progress", image.path],
        { timeoutMs: 60_000 },
      );
      expect(noUnpack.code).toBe(0);
      expect(noUnpack.stdout).not.toContain("unpacking");
      expect((await ctr(berthd.socket, "-n", other, "snapshots", "ls")).stdout.trim().split("\n")).toHaveLength(1);

      const target = join(dir, "berth-mount");
      await mkdir(target, { recursive: true });
      const m = await berthWith(
        berthd.socket,
        ["-n", other, "images", "mount", "--snapshotter", "native", NAME, target],
        { timeoutMs: 60_000 },
      );
      expect(m.stderr).toBe("");
      expect(m.code).toBe(0);
      expect(m.stdout.trim().split("\n")).toEqual([chain[2], target]);
      try {
        const { stdout } = await sh("cat", [join(target, "opt/app/deep/nested/file")]);
        expect(stdout).toBe("implicit parents");
        // a read-only view
        await expect(sh("sh", ["-c", `echo x > ${join(target, "new")}`])).rejects.toThrow();
      } finally {
        const u = await berthWith(berthd.socket, [
          "-n",
          other,
          "images",
          "unmount",
          "--snapshotter",
          "native",
          "--rm",
          target,
        ]);
        expect(u.stderr).toBe("");
        expect(u.code).toBe(0);
      }
      const ls = await ctr(berthd.socket, "-n", other, "snapshots", "--snapshotter", "native", "ls");
      expect(ls.stdout).toContain(chain[2]);
      expect(ls.stdout).not.toContain(target);
    });
  },
);

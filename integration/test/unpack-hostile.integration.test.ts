/**
 * Hostile layers through unpack with the real `ctr` against berthd (`ctr images import` unpacks through the
 * Diff and Snapshots services). Each image is busybox plus one hostile layer. What a layer may do inside its
 * root (as containerd: `..` and absolute names are clamped at the root, symlinks are resolved inside it) is
 * applied there; what it cannot do fails with a clear error. Either way nothing outside the root changes, no
 * active (`extract-…`) snapshot remains, a failed layer's snapshot is never committed, and the snapshotter
 * holds no directory for a removed snapshot.
 */
import { createHash } from "node:crypto";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { createSnapshotterClient } from "@berth/snapshotter/proxy";
import { afterAll, afterEach, beforeAll, describe, expect, test } from "vitest";
import {
  type Berthd,
  ctr,
  ctrWith,
  grpcTransport,
  skipReason,
  startBerthd,
  stopAll,
  stopClients,
  tempDir,
  triggerGc,
  waitUntil,
} from "../src/harness.js";
import {
  type Layer,
  type LayerEntry,
  busyboxLayer,
  chainIDs,
  gzipLayer,
  layerTar,
  rawLayer,
  sha256,
  writeImageArchive,
} from "./unpack-layers.js";

const reason = skipReason();
const NS = "unpack-hostile";

/** A gzip stream of a tar with one `size`-byte file of zeros, as concatenated gzip members (little memory). */
function gzipBomb(size: number): Buffer {
  const chunk = 16 << 20;
  const header = layerTar([{ name: "bomb", size, data: "" }], { end: false });
  const zeros = gzipSync(Buffer.alloc(chunk), { level: 9 });
  const parts = [gzipSync(header)];
  for (let n = 0; n < size; n += chunk) parts.push(zeros);
  parts.push(gzipSync(Buffer.alloc(1024)));
  return Buffer.concat(parts);
}

interface Case {
  readonly name: string;
  readonly layer: (sentinel: string) => Layer;
  /** An error message pattern, or "applied" when the layer is applied inside the root. */
  readonly expect: RegExp | "applied";
  /** With "applied": a check on the unpacked top layer (its snapshot directory). */
  readonly inside?: (root: string) => void;
}

const gz = (entries: LayerEntry[]) => gzipLayer(layerTar(entries));

const CASES: Case[] = [
  {
    name: "../ traversal",
    layer: (s) =>
      gz([
        { name: "../escape", data: "x" },
        { name: `../../../../../../..${s}/secret`, data: "x" },
      ]),
    expect: "applied",
    inside: (root) => expect(readFileSync(join(root, "escape"), "utf8")).toBe("x"),
  },
  {
    name: "absolute names",
    layer: (s) =>
      gz([
        { name: `${s}/secret`, data: "pwned" },
        { name: "/abs", data: "y" },
      ]),
    expect: "applied",
    inside: (root) => expect(readFileSync(join(root, "abs"), "utf8")).toBe("y"),
  },
  {
    name: "symlink to an outside dir, then a write through it",
    layer: (s) =>
      gz([
        { name: "link", type: "symlink", linkname: s },
        { name: "link/secret", data: "pwned" },
      ]),
    expect: "applied",
  },
  {
    name: "relative symlink escaping with .., then a write through it",
    layer: () =>
      gz([
        { name: "d/", type: "dir", mode: 0o755 },
        { name: "d/link", type: "symlink", linkname: "../../../../../../../../../etc" },
        { name: "d/link/passwd", data: "root::0:0::/:/bin/sh\n" },
      ]),
    expect: "applied",
    inside: (root) => expect(readFileSync(join(root, "etc/passwd"), "utf8")).toContain("root::0:0"),
  },
  {
    name: "symlink replaced by a file of the same name",
    layer: (s) =>
      gz([
        { name: "f", type: "symlink", linkname: `${s}/secret` },
        { name: "f", data: "replaced" },
      ]),
    expect: "applied",
    inside: (root) => expect(readFileSync(join(root, "f"), "utf8")).toBe("replaced"),
  },
  {
    name: "hard link to an outside file (absolute)",
    layer: (s) => gz([{ name: "h", type: "link", linkname: `${s}/secret` }]),
    expect: /hard link .*target does not exist inside the root/,
  },
  {
    name: "hard link to an outside file (../)",
    layer: () => gz([{ name: "h", type: "link", linkname: "../../../../../../../../etc/passwd" }]),
    expect: /hard link .*target does not exist inside the root/,
  },
  {
    name: "hard link through a symlinked dir pointing outside",
    layer: (s) =>
      gz([
        { name: "d", type: "symlink", linkname: s },
        { name: "h", type: "link", linkname: "d/secret" },
      ]),
    expect: /hard link .*target does not exist inside the root/,
  },
  {
    name: "whiteout of ..",
    layer: () => gz([{ name: "a/", type: "dir" }, { name: "a/.wh.." }]),
    expect: /invalid whiteout name/,
  },
  {
    name: "whiteout with traversal and through a symlink",
    layer: (s) =>
      gz([{ name: "../.wh.sentinel" }, { name: "link", type: "symlink", linkname: s }, { name: "link/.wh.secret" }]),
    expect: "applied",
  },
  {
    name: "device nodes with escaping names",
    layer: () =>
      gz([
        { name: "../null", type: "char", mode: 0o666, devmajor: 1, devminor: 3 },
        { name: "/disk", type: "block", mode: 0o600, devmajor: 7, devminor: 0 },
      ]),
    expect: "applied",
    inside: (root) => {
      expect(existsSync(join(root, "null"))).toBe(true);
      expect(existsSync(join(root, "disk"))).toBe(true);
    },
  },
  {
    name: "a 256-byte name component",
    layer: () => gz([{ name: "a".repeat(256), data: "x" }]),
    expect: /name too long/,
  },
  {
    name: "a path past PATH_MAX",
    layer: () => gz([{ name: Array.from({ length: 40 }, () => "b".repeat(120)).join("/"), data: "x" }]),
    expect: /name too long/,
  },
  {
    name: "a symlink loop, then a write through it",
    layer: () =>
      gz([
        { name: "a", type: "symlink", linkname: "b" },
        { name: "b", type: "symlink", linkname: "a" },
        { name: "a/x", data: "x" },
      ]),
    expect: /too many levels of symbolic links/,
  },
  {
    name: "a file below a regular file",
    layer: () =>
      gz([
        { name: "f", data: "x" },
        { name: "f/g", data: "y" },
      ]),
    expect: /not a directory/i,
  },
  {
    name: "a gzip bomb (600 MiB of zeros in ~600 KiB)",
    layer: () => rawLayer(gzipBomb(600 << 20), sha256("bomb")),
    expect: /exceeds the \d+-byte limit/,
  },
  {
    name: "a truncated gzip stream",
    layer: () => {
      const t = layerTar([
        { name: "big", data: Buffer.alloc(300_000, 9) },
        { name: "after", data: "a" },
      ]);
      const g = gzipSync(t);
      return rawLayer(g.subarray(0, g.length - 40), sha256(t));
    },
    expect: /truncated/,
  },
  {
    name: "a tar cut mid-entry",
    layer: () => {
      const t = layerTar([{ name: "big", data: Buffer.alloc(300_000, 9) }]);
      const cut = t.subarray(0, 100_000);
      return rawLayer(gzipSync(cut), sha256(cut));
    },
    expect: /truncated/,
  },
  {
    name: "a diffID mismatch",
    layer: () => gzipLayer(layerTar([{ name: "a", data: "a" }]), sha256("not this layer")),
    expect: /wrong diff id/,
  },
  {
    name: "a corrupt tar header",
    layer: () => {
      const t = layerTar([{ name: "a", data: "a" }]);
      t[10] = t[10]! ^ 0xff;
      return rawLayer(gzipSync(t), sha256(t));
    },
    expect: /checksum/,
  },
];

function treeHash(dir: string): string {
  const h = createHash("sha256");
  const walk = (p: string) => {
    for (const name of readdirSync(p, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const full = join(p, name.name);
      h.update(`${full}\n`);
      if (name.isDirectory()) walk(full);
      else if (name.isFile()) h.update(readFileSync(full));
    }
  };
  walk(dir);
  return h.digest("hex");
}

describe.skipIf(reason !== undefined)(
  reason ? `hostile unpack (skipped: ${reason})` : "hostile layers through unpack",
  () => {
    let berthd: Berthd;
    let dir: string;
    let sentinel: string;
    let outsideBefore: string;
    const passwd = readFileSync("/etc/passwd");
    const base = gzipLayer(busyboxLayer());

    beforeAll(async () => {
      [berthd, dir] = await Promise.all([startBerthd(), tempDir("berth-hostile-")]);
      sentinel = join(dir, "sentinel");
      await mkdir(join(sentinel, "sub"), { recursive: true });
      await writeFile(join(sentinel, "secret"), "original");
      await writeFile(join(sentinel, "sub", "file"), "original");
      outsideBefore = treeHash(sentinel);
    }, 60_000);
    afterEach(stopClients);
    afterAll(stopAll);

    const snapshotRows = async (snapshotter: string) => {
      const ls = await ctr(berthd.socket, "-n", NS, "snapshots", "--snapshotter", snapshotter, "ls");
      expect(ls.code).toBe(0);
      return ls.stdout
        .trim()
        .split("\n")
        .slice(1)
        .map((l) => l.trim().split(/\s+/));
    };

    test.each(CASES.map((c, i) => [i + 1, c.name, c] as const))(
      "%i. %s",
      async (i, _name, c) => {
        const snapshotter = i % 2 === 0 ? "native" : "overlayfs";
        const layer = c.layer(sentinel);
        const name = `docker.io/library/hostile:${i}`;
        const image = await writeImageArchive(join(dir, `hostile-${i}.tar`), name, [base, layer]);
        const chain = chainIDs(image.diffIDs);
        const imp = await ctrWith(
          berthd.socket,
          ["-n", NS, "images", "import", "--snapshotter", snapshotter, image.path],
          {
            timeoutMs: 120_000,
          },
        );
        const rows = await snapshotRows(snapshotter);
        // never an active snapshot left, whatever happened
        expect(rows.filter((r) => r[r.length - 1] !== "Committed")).toEqual([]);
        expect(rows.some((r) => r[0]!.startsWith("extract-"))).toBe(false);
        // nothing outside the root changed
        expect(treeHash(sentinel)).toBe(outsideBefore);
        expect(readFileSync("/etc/passwd").equals(passwd)).toBe(true);
        expect(existsSync(join(dir, "escape"))).toBe(false);

        if (c.expect === "applied") {
          expect(imp.stderr).toBe("");
          expect(imp.code).toBe(0);
          expect(rows.map((r) => r[0])).toContain(chain[1]);
          if (c.inside) {
            // a view under a lease (an unleased one is fair game for the GC), through the Snapshots service
            const lease = `inside-${i}`;
            expect((await ctr(berthd.socket, "-n", NS, "leases", "create", "--id", lease)).code).toBe(0);
            const conn = grpcTransport(berthd.socket);
            try {
              const sn = createSnapshotterClient(conn.transport, snapshotter);
              const mounts = await sn.view({ namespace: NS, lease }, `view-${i}`, chain[1]!);
              const m = mounts[0]!;
              // the top layer's own directory: overlay's first lowerdir, or native's bind source
              const top =
                m.type === "bind"
                  ? m.source
                  : m.options
                      .find((o) => o.startsWith("lowerdir="))
                      ?.slice(9)
                      .split(":")[0];
              expect(top).toBeDefined();
              c.inside(top!);
            } finally {
              conn.close();
              await ctr(berthd.socket, "-n", NS, "leases", "rm", lease);
            }
          }
        } else {
          expect(imp.code).not.toBe(0);
          expect(imp.stderr).toMatch(c.expect);
          // the hostile layer's snapshot was never committed; its parent (busybox) was
          expect(rows.map((r) => r[0])).not.toContain(chain[1]);
          expect(rows.map((r) => r[0])).toContain(chain[0]);
        }
        // once the GC has run, the snapshotter keeps no directory of a removed snapshot
        await triggerGc(berthd.socket, NS);
        const snapDir = join(berthd.root, `io.containerd.snapshotter.v1.${snapshotter}`, "snapshots");
        await waitUntil("removed snapshots' directories to go", async () =>
          readdirSync(snapDir).length === (await snapshotRows(snapshotter)).length ? true : undefined,
        );
      },
      180_000,
    );
  },
);

import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { isCanceled, isFailedPrecondition, isNotImplemented } from "@berth/errdefs";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { applyLayer, compressionOfMediaType, detectCompression } from "../src/index.js";
import { lgetxattr } from "../src/internal/sys.js";
import { type Sandbox, chunks, gzip, makeTar, sandbox, sha256, zstd } from "./helpers.js";

const isRoot = process.geteuid?.() === 0;
const T1 = new Date("2021-05-06T07:08:09Z");
const T2 = new Date("2022-01-01T00:00:00Z");

let sb: Sandbox;
beforeEach(() => {
  sb = sandbox();
});
afterEach(() => sb.cleanup());

const realistic = () =>
  makeTar([
    { name: "bin/", type: "directory", mode: 0o755, mtime: T1 },
    { name: "bin/busybox", body: "#!/bin/sh\necho hi\n", mode: 0o4755, uid: 0, gid: 0, mtime: T1 },
    { name: "bin/sh", type: "link", linkname: "bin/busybox", mode: 0o4755, mtime: T1 },
    { name: "bin/ls", type: "symlink", linkname: "busybox", mtime: T1 },
    { name: "etc/", type: "directory", mode: 0o750, uid: 1000, gid: 1001, mtime: T2 },
    { name: "etc/motd", body: "welcome\n", mode: 0o640, uid: 1000, gid: 1001, mtime: T2 },
    { name: "etc/cap", body: "x", pax: { "SCHILY.xattr.user.berth": "yes", "SCHILY.xattr.trusted.evil": "1" } },
    { name: "dev/", type: "directory" },
    { name: "dev/null", type: "character-device", devmajor: 1, devminor: 3, mode: 0o666 },
    { name: "dev/loop0", type: "block-device", devmajor: 7, devminor: 0, mode: 0o660 },
    { name: "run/fifo", type: "fifo", mode: 0o600 },
    { name: "tmp/", type: "directory", mode: 0o1777 },
    { name: "./", type: "directory", mode: 0o700 },
  ]);

describe("applyLayer: a realistic layer", () => {
  it.runIf(isRoot)("creates every entry type with owners, modes, times and xattrs", async () => {
    const tarball = await realistic();
    const res = await applyLayer(sb.root, chunks(gzip(tarball)));
    expect(res).toMatchObject({ diffID: sha256(tarball), size: tarball.length, compression: "gzip", entries: 13 });
    const r = (p: string) => path.join(sb.root, p);
    const bb = fs.lstatSync(r("bin/busybox"));
    expect(bb.mode & 0o7777).toBe(0o4755);
    expect(fs.readFileSync(r("bin/busybox"), "utf8")).toBe("#!/bin/sh\necho hi\n");
    expect(bb.mtimeMs).toBe(T1.getTime());
    expect(fs.lstatSync(r("bin/sh")).ino).toBe(bb.ino);
    expect(bb.nlink).toBe(2);
    expect(fs.readlinkSync(r("bin/ls"))).toBe("busybox");
    expect(fs.lstatSync(r("bin/ls")).mtimeMs).toBe(T1.getTime());
    const etc = fs.lstatSync(r("etc"));
    expect([etc.mode & 0o7777, etc.uid, etc.gid]).toEqual([0o750, 1000, 1001]);
    // directory times are set after their contents are written
    expect(etc.mtimeMs).toBe(T2.getTime());
    expect(fs.lstatSync(r("bin")).mtimeMs).toBe(T1.getTime());
    const motd = fs.lstatSync(r("etc/motd"));
    expect([motd.mode & 0o777, motd.uid, motd.gid]).toEqual([0o640, 1000, 1001]);
    expect(lgetxattr(r("etc/cap"), "user.berth")?.toString()).toBe("yes");
    expect(lgetxattr(r("etc/cap"), "trusted.evil")).toBeNull(); // admin attributes from archives are refused
    const dn = fs.lstatSync(r("dev/null"));
    expect(dn.isCharacterDevice()).toBe(true);
    expect(dn.rdev).toBe((1 << 8) | 3);
    expect(fs.lstatSync(r("dev/loop0")).isBlockDevice()).toBe(true);
    expect(fs.lstatSync(r("run/fifo")).isFIFO()).toBe(true);
    expect(fs.lstatSync(r("tmp")).mode & 0o7777).toBe(0o1777);
    // an entry naming the root itself is ignored, as containerd does
    expect(fs.statSync(sb.root).mode & 0o777).not.toBe(0o700);
  });

  it("reports a diffID equal to sha256sum of the uncompressed tar, for plain, gzip and zstd", async () => {
    const tarball = await makeTar([
      { name: "a/b/c.txt", body: "hello".repeat(5000) },
      { name: "a/d", type: "symlink", linkname: "b/c.txt" },
    ]);
    const file = path.join(sb.dir, "layer.tar");
    fs.writeFileSync(file, tarball);
    const expected = `sha256:${execFileSync("sha256sum", [file]).toString().split(" ")[0]}`;
    const variants: [string, Buffer][] = [
      ["none", tarball],
      ["gzip", gzip(tarball)],
      ["zstd", zstd(tarball)],
    ];
    for (const [kind, blob] of variants) {
      const root = fs.mkdtempSync(path.join(sb.dir, `r-${kind}-`));
      const res = await applyLayer(root, chunks(blob, 1000), { expectedDiffID: expected, noSameOwner: !isRoot });
      expect(res.diffID).toBe(expected);
      expect(res.compression).toBe(kind);
      expect(res.size).toBe(tarball.length);
      expect(fs.readFileSync(path.join(root, "a/b/c.txt"), "utf8")).toBe("hello".repeat(5000));
    }
  });

  it("applies whiteouts and opaque dirs over a lower layer (two layers into one dir)", async () => {
    const lower = await makeTar([
      { name: "keep", body: "k" },
      { name: "gone", body: "g" },
      { name: "gonedir/", type: "directory" },
      { name: "gonedir/x", body: "x" },
      { name: "opq/", type: "directory" },
      { name: "opq/old1", body: "1" },
      { name: "opq/olddir/", type: "directory" },
      { name: "opq/olddir/f", body: "f" },
      { name: "opq/stay", body: "lower" },
    ]);
    const upper = await makeTar([
      { name: ".wh.gone" },
      { name: ".wh.gonedir" },
      { name: "opq/stay", body: "upper" }, // written by this layer before the marker: survives
      { name: "opq/.wh..wh..opq" },
      { name: "opq/new", body: "n" },
      { name: ".wh.never-existed" },
    ]);
    const o = { noSameOwner: !isRoot };
    await applyLayer(sb.root, chunks(lower), o);
    await applyLayer(sb.root, chunks(gzip(upper)), o);
    const list = (d: string) => fs.readdirSync(path.join(sb.root, d)).sort();
    expect(list(".")).toEqual(["keep", "opq"]);
    expect(list("opq")).toEqual(["new", "stay"]);
    expect(fs.readFileSync(path.join(sb.root, "opq/stay"), "utf8")).toBe("upper");
  });

  it.runIf(isRoot)(
    "converts whiteouts for overlayfs (char 0/0, trusted.overlay.opaque or user.overlay.opaque)",
    async () => {
      const upper = await makeTar([
        { name: "d/", type: "directory" },
        { name: "d/.wh..wh..opq" },
        { name: "d/f", body: "f" },
        { name: ".wh.removed", uid: 12, gid: 34 },
      ]);
      await applyLayer(sb.root, chunks(upper), { whiteouts: "overlay" });
      const wh = fs.lstatSync(path.join(sb.root, "removed"));
      expect(wh.isCharacterDevice()).toBe(true);
      expect(wh.rdev).toBe(0);
      expect([wh.uid, wh.gid]).toEqual([12, 34]);
      expect(lgetxattr(path.join(sb.root, "d"), "trusted.overlay.opaque")?.toString()).toBe("y");
      expect(fs.existsSync(path.join(sb.root, "d/.wh..wh..opq"))).toBe(false);
      expect(fs.existsSync(path.join(sb.root, ".wh.removed"))).toBe(false);

      const root2 = fs.mkdtempSync(path.join(sb.dir, "u-"));
      await applyLayer(root2, chunks(upper), { whiteouts: "overlay", overlayUserXattr: true });
      expect(lgetxattr(path.join(root2, "d"), "user.overlay.opaque")?.toString()).toBe("y");
      expect(lgetxattr(path.join(root2, "d"), "trusted.overlay.opaque")).toBeNull();
    },
  );

  it("replaces duplicates, a file by a dir and a dir by a file", async () => {
    const t = await makeTar([
      { name: "dup", body: "first" },
      { name: "dup", body: "second" },
      { name: "was-dir/", type: "directory" },
      { name: "was-dir/child", body: "c" },
      { name: "was-dir", body: "now a file" },
      { name: "was-file", body: "f" },
      { name: "was-file/", type: "directory", mode: 0o711 },
      { name: "was-file/inner", body: "i" },
      { name: "merge/", type: "directory", mode: 0o700 },
      { name: "merge/a", body: "a" },
      { name: "merge/", type: "directory", mode: 0o755 },
    ]);
    await applyLayer(sb.root, chunks(t), { noSameOwner: !isRoot });
    const r = (p: string) => path.join(sb.root, p);
    expect(fs.readFileSync(r("dup"), "utf8")).toBe("second");
    expect(fs.readFileSync(r("was-dir"), "utf8")).toBe("now a file");
    expect(fs.lstatSync(r("was-file")).isDirectory()).toBe(true);
    expect(fs.lstatSync(r("was-file")).mode & 0o777).toBe(0o711);
    expect(fs.readFileSync(r("was-file/inner"), "utf8")).toBe("i");
    expect(fs.readFileSync(r("merge/a"), "utf8")).toBe("a"); // dir over dir merges
    expect(fs.lstatSync(r("merge")).mode & 0o777).toBe(0o755);
  });

  it("handles long names (PAX paths) within the kernel's limits", async () => {
    const comp = "c".repeat(255);
    const name = `${comp}/${"d".repeat(200)}/${"e".repeat(250)}/file-${"f".repeat(240)}`;
    const t = await makeTar([{ name, body: "deep" }]);
    await applyLayer(sb.root, chunks(t), { noSameOwner: !isRoot });
    expect(fs.readFileSync(path.join(sb.root, name), "utf8")).toBe("deep");
  });

  it("keeps binary xattr values intact (PAX values are bytes)", async () => {
    // security.capability-like binary value, written as a raw PAX record
    const value = Buffer.from([0x01, 0x00, 0x00, 0x02, 0xff, 0xfe, 0x00, 0x80]);
    const rec = (k: string, v: Buffer) => {
      const body = Buffer.concat([Buffer.from(` ${k}=`), v, Buffer.from("\n")]);
      let len = body.length + 1;
      while (String(len).length + body.length !== len) len = String(len).length + body.length;
      return Buffer.concat([Buffer.from(String(len)), body]);
    };
    const pax = rec("SCHILY.xattr.user.bin", value);
    const base = await makeTar([
      { name: "PaxHeader", type: "file", body: pax },
      { name: "f", body: "x" },
    ]);
    // turn the first entry's type flag into 'x' (local PAX header) and fix its checksum
    base[156] = "x".charCodeAt(0);
    base.fill(0x20, 148, 156);
    let sum = 0;
    for (let i = 0; i < 512; i++) sum += base[i]!;
    base.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, "latin1");
    await applyLayer(sb.root, chunks(base), { noSameOwner: !isRoot });
    expect(lgetxattr(path.join(sb.root, "f"), "user.bin")).toEqual(value);
  });

  it("fails a diffID mismatch naming both digests", async () => {
    const t = await makeTar([{ name: "a", body: "a" }]);
    const wrong = `sha256:${"0".repeat(64)}`;
    const err = await applyLayer(sb.root, chunks(t), { expectedDiffID: wrong, noSameOwner: !isRoot }).catch((e) => e);
    expect(isFailedPrecondition(err)).toBe(true);
    expect(err.message).toContain(wrong);
    expect(err.message).toContain(sha256(t));
  });

  it("stops when its signal is aborted", async () => {
    const t = await makeTar([{ name: "a", body: "a" }]);
    const ac = new AbortController();
    ac.abort();
    expect(isCanceled(await applyLayer(sb.root, chunks(t), { signal: ac.signal }).catch((e) => e))).toBe(true);
    const ac2 = new AbortController();
    const gen = async function* () {
      yield t.subarray(0, 512);
      ac2.abort();
      yield t.subarray(512);
    };
    const err = await applyLayer(sb.root, gen(), { signal: ac2.signal, noSameOwner: !isRoot }).catch((e) => e);
    expect(isCanceled(err)).toBe(true);
  });

  it("knows layer media types and magic bytes", () => {
    expect(compressionOfMediaType("application/vnd.oci.image.layer.v1.tar+gzip")).toBe("gzip");
    expect(compressionOfMediaType("application/vnd.oci.image.layer.v1.tar+zstd")).toBe("zstd");
    expect(compressionOfMediaType("application/vnd.oci.image.layer.v1.tar")).toBe("none");
    expect(compressionOfMediaType("application/vnd.docker.image.rootfs.diff.tar.gzip")).toBe("gzip");
    expect(compressionOfMediaType("application/vnd.oci.image.layer.nondistributable.v1.tar+gzip")).toBe("gzip");
    expect(() => compressionOfMediaType("application/vnd.oci.image.config.v1+json")).toThrow(/unsupported/);
    expect(
      isNotImplemented(
        (() => {
          try {
            compressionOfMediaType("application/x-bzip2");
          } catch (e) {
            return e;
          }
        })(),
      ),
    ).toBe(true);
    expect(detectCompression(Buffer.from([0x1f, 0x8b, 0x08, 0]))).toBe("gzip");
    expect(detectCompression(Buffer.from([0x28, 0xb5, 0x2f, 0xfd]))).toBe("zstd");
    expect(detectCompression(Buffer.from("bin/"))).toBe("none");
  });
});

describe("applyLayer: implicit parents", () => {
  it("replaces a parent dir created implicitly by an earlier entry", async () => {
    const sb2 = sandbox();
    try {
      const t = await makeTar([
        { name: "a/b/c", body: "c" },
        { name: "a/b", body: "now a file" },
        { name: "x/y", body: "y" },
        { name: "x/", type: "directory", mode: 0o700 },
      ]);
      await applyLayer(sb2.root, chunks(t), { noSameOwner: !isRoot });
      expect(fs.readFileSync(path.join(sb2.root, "a/b"), "utf8")).toBe("now a file");
      expect(fs.readFileSync(path.join(sb2.root, "x/y"), "utf8")).toBe("y");
      expect(fs.statSync(path.join(sb2.root, "x")).mode & 0o777).toBe(0o700);
    } finally {
      sb2.cleanup();
    }
  });
});

describe("applyLayer: same tree as GNU tar", () => {
  it.runIf(isRoot)(
    "matches tar -xp on paths, types, modes, owners, sizes, link targets, rdevs and mtimes",
    async () => {
      const sb2 = sandbox();
      try {
        const t = await makeTar([
          { name: "usr/", type: "directory", mode: 0o755, mtime: T1 },
          { name: "usr/bin/", type: "directory", mode: 0o755, uid: 2, gid: 3, mtime: T2 },
          { name: "usr/bin/su", body: "su", mode: 0o4755, mtime: T1 },
          { name: "usr/bin/sg", type: "link", linkname: "usr/bin/su", mode: 0o4755, mtime: T1 },
          { name: "usr/bin/rel", type: "symlink", linkname: "../lib/x", mtime: T2 },
          { name: "usr/bin/abs", type: "symlink", linkname: "/usr/lib/x", mtime: T2 },
          { name: "usr/lib/x", body: "x".repeat(10_000), mode: 0o600, uid: 1000, gid: 1000, mtime: T2 },
          { name: "dev/zero", type: "character-device", devmajor: 1, devminor: 5, mode: 0o666, mtime: T1 },
          { name: "dev/sda", type: "block-device", devmajor: 8, devminor: 0, mode: 0o660, gid: 6, mtime: T1 },
          { name: "var/run/p", type: "fifo", mode: 0o620, mtime: T2 },
          { name: "tmp/", type: "directory", mode: 0o1777, mtime: T1 },
          { name: `long/${"n".repeat(150)}/${"m".repeat(200)}`, body: "long", mtime: T1 },
        ]);
        const ours = path.join(sb2.dir, "ours");
        const theirs = path.join(sb2.dir, "theirs");
        fs.mkdirSync(ours);
        fs.mkdirSync(theirs);
        await applyLayer(ours, chunks(t));
        execFileSync("tar", ["-xp", "--same-owner", "-C", theirs], { input: t });
        const list = (d: string) =>
          execFileSync("find", [".", "-mindepth", "1", "-printf", "%p %y %m %U:%G %s %l %T@ %i\n"], { cwd: d })
            .toString()
            .split("\n")
            .filter(Boolean)
            .map((l) => {
              const f = l.split(" ");
              if (f[1] === "d") f[4] = "-";
              f[7] = ""; // inode numbers differ; hard-link sharing is checked below
              return f.join(" ");
            })
            .sort()
            .join("\n");
        // tar leaves implicit parents it creates with the current time; set those the layer did not carry
        for (const d of [ours, theirs])
          for (const p of ["dev", "var", "var/run", "usr/lib", "long", `long/${"n".repeat(150)}`]) {
            fs.utimesSync(path.join(d, p), T1, T1);
          }
        expect(list(ours)).toBe(list(theirs));
        const rdev = (d: string, p: string) => fs.lstatSync(path.join(d, p)).rdev;
        expect(rdev(ours, "dev/sda")).toBe(rdev(theirs, "dev/sda"));
        expect(rdev(ours, "dev/zero")).toBe(rdev(theirs, "dev/zero"));
        expect(fs.lstatSync(path.join(ours, "usr/bin/sg")).nlink).toBe(2);
      } finally {
        sb2.cleanup();
      }
    },
  );
});

// The hostile-layer corpus. Each layer either fails with a clear error or is neutralised the way containerd's
// archive.Apply neutralises it (names evaluated inside the root); in every case the sentinel dir next to the
// root, and everything else outside the root, is left exactly as it was.
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import {
  isDataLoss,
  isFailedPrecondition,
  isInvalidArgument,
  isPermissionDenied,
  isResourceExhausted,
} from "@berth/errdefs";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type ApplyOptions, applyLayer } from "../src/index.js";
import { type Entry, type Sandbox, chunks, gzip, gzipBomb, makeTar, sandbox, sha256 } from "./helpers.js";

const isRoot = process.geteuid?.() === 0;
let sb: Sandbox;
let before: string;
let etcPasswd: string;
const hashFile = (p: string) => createHash("sha256").update(fs.readFileSync(p)).digest("hex");

beforeEach(() => {
  sb = sandbox();
  before = sb.outside();
  etcPasswd = `${hashFile("/etc/passwd")} ${fs.statSync("/etc/passwd").mtimeMs}`;
});
afterEach(() => {
  // the invariant of the whole corpus: nothing outside the root changed
  expect(sb.outside()).toBe(before);
  expect(`${hashFile("/etc/passwd")} ${fs.statSync("/etc/passwd").mtimeMs}`).toBe(etcPasswd);
  sb.cleanup();
});

const opts: ApplyOptions = { noSameOwner: !isRoot };
const apply = async (entries: Entry[], o: ApplyOptions = {}) =>
  applyLayer(sb.root, chunks(gzip(await makeTar(entries))), { ...opts, ...o });
const fails = async (entries: Entry[], o: ApplyOptions = {}) => {
  const err = await apply(entries, o).then(
    () => undefined,
    (e: unknown) => e as Error,
  );
  expect(err, "the layer was expected to be refused").toBeInstanceOf(Error);
  return err!;
};
const inRoot = (p: string) => path.join(sb.root, p);
const read = (p: string) => fs.readFileSync(inRoot(p), "utf8");

describe("hostile layers: neutralised inside the root, as containerd does", () => {
  it("1. ../ traversal lands inside the root", async () => {
    await apply([
      { name: "../escape", body: "x" },
      { name: "../../../../../../sentinel/secret", body: "x" },
      { name: "a/../../sentinel/sub/file", body: "x" },
    ]);
    expect(read("escape")).toBe("x");
    expect(read("sentinel/secret")).toBe("x");
    expect(read("sentinel/sub/file")).toBe("x");
  });

  it("2. absolute names are made relative to the root", async () => {
    await apply([
      { name: `${sb.sentinel}/secret`, body: "x" },
      { name: "/abs", body: "y" },
    ]);
    expect(read(`${sb.sentinel}/secret`)).toBe("x");
    expect(read("abs")).toBe("y");
  });

  it("3. symlink to an absolute outside dir, then a file below it: written inside the root", async () => {
    await apply([
      { name: "link", type: "symlink", linkname: sb.sentinel },
      { name: "link/secret", body: "pwned" },
      { name: "link/sub/file", body: "pwned" },
    ]);
    expect(fs.readlinkSync(inRoot("link"))).toBe(sb.sentinel);
    expect(read(`${sb.sentinel}/secret`)).toBe("pwned");
  });

  it("4. relative symlink escaping with .., then a file below it: clamped at the root", async () => {
    await apply([
      { name: "d/link", type: "symlink", linkname: "../../../sentinel" },
      { name: "d/link/secret", body: "pwned" },
    ]);
    expect(read("sentinel/secret")).toBe("pwned");
  });

  it("5. symlink to /etc, then a file below it: written at root/etc, /etc/passwd untouched", async () => {
    await apply([
      { name: "e", type: "symlink", linkname: "/etc" },
      { name: "e/passwd", body: "root::0:0::/:/bin/sh\n" },
    ]);
    expect(read("etc/passwd")).toBe("root::0:0::/:/bin/sh\n");
    expect(fs.lstatSync(inRoot("e")).isSymbolicLink()).toBe(true);
    // etc -> /etc evaluates to itself inside the root: a loop, refused (continuity's RootPath does the same)
    const err = await fails([
      { name: "etc", type: "symlink", linkname: "/etc" },
      { name: "etc/passwd", body: "x" },
    ]);
    expect(err.message).toMatch(/too many levels of symbolic links/);
  });

  it("6. symlink to an outside file, then a write to the symlink's own name: the link is replaced", async () => {
    await apply([
      { name: "f", type: "symlink", linkname: `${sb.sentinel}/secret` },
      { name: "f", body: "replaced" },
    ]);
    expect(fs.lstatSync(inRoot("f")).isFile()).toBe(true);
    expect(read("f")).toBe("replaced");
  });

  it("7. hard link to a symlink pointing outside links the symlink itself, never its target", async () => {
    await apply([
      { name: "s", type: "symlink", linkname: `${sb.sentinel}/secret` },
      { name: "h", type: "link", linkname: "s" },
      { name: "h2", type: "link", linkname: "/s" },
    ]);
    const h = fs.lstatSync(inRoot("h"));
    expect(h.isSymbolicLink()).toBe(true);
    expect(h.ino).toBe(fs.lstatSync(inRoot("s")).ino);
    expect(fs.lstatSync(inRoot("h2")).ino).toBe(h.ino);
  });

  it("8. whiteout with traversal removes only inside the root", async () => {
    fs.mkdirSync(inRoot("sentinel"));
    fs.writeFileSync(inRoot("sentinel/secret"), "inside");
    await apply([{ name: "../.wh.sentinel" }, { name: "../../sub/../.wh.secret" }]);
    expect(fs.existsSync(inRoot("sentinel"))).toBe(false);
  });

  it("9. whiteout through a symlinked dir removes only inside the root", async () => {
    await apply([
      { name: "link", type: "symlink", linkname: sb.sentinel },
      { name: "link/.wh.secret" },
      { name: "link/.wh..wh..opq" },
      { name: "rel", type: "symlink", linkname: "../sentinel" },
      { name: "rel/.wh.sub" },
    ]);
  });

  it("10. device nodes as root are created inside the root, whatever their name", async () => {
    if (!isRoot) return;
    await apply([{ name: "../null", type: "character-device", devmajor: 1, devminor: 3, mode: 0o666 }]);
    expect(fs.lstatSync(inRoot("null")).isCharacterDevice()).toBe(true);
  });

  it("11. the root entry itself ('./', '/', '..') is ignored", async () => {
    const mode = fs.statSync(sb.root).mode;
    await apply([
      { name: "./", type: "directory", mode: 0o777 },
      { name: "/", type: "directory", mode: 0o777 },
      { name: "..", type: "directory", mode: 0o777 },
    ]);
    expect(fs.statSync(sb.root).mode).toBe(mode);
  });
});

describe("hostile layers: refused with a clear error", () => {
  it("12. hard link to a file outside (relative and absolute)", async () => {
    for (const linkname of ["../sentinel/secret", `${sb.sentinel}/secret`, "../../../../etc/passwd"]) {
      const err = await fails([{ name: "h", type: "link", linkname }]);
      expect(isInvalidArgument(err)).toBe(true);
      expect(err.message).toMatch(/hard link "h" .*target does not exist inside the root/);
    }
  });

  it("13. hard link through a symlinked dir pointing outside", async () => {
    const err = await fails([
      { name: "d", type: "symlink", linkname: sb.sentinel },
      { name: "h", type: "link", linkname: "d/secret" },
    ]);
    expect(isInvalidArgument(err)).toBe(true);
  });

  it("14. hard link to a directory or the root", async () => {
    for (const linkname of ["..", "/", "dir"]) {
      const err = await fails([
        { name: "dir/", type: "directory" },
        { name: "h", type: "link", linkname },
      ]);
      expect(isInvalidArgument(err)).toBe(true);
    }
  });

  it("15. whiteout of .., of . and of nothing", async () => {
    for (const name of [".wh...", "a/.wh...", "a/.wh..", ".wh."]) {
      const err = await fails([{ name }]);
      expect(isInvalidArgument(err)).toBe(true);
      expect(err.message).toMatch(/invalid whiteout name/);
    }
  });

  it("16. very long names: a 256-byte component and a path past PATH_MAX", async () => {
    let err = await fails([{ name: `${"a".repeat(256)}`, body: "x" }]);
    expect(isInvalidArgument(err)).toBe(true);
    expect(err.message).toMatch(/name too long/);
    err = await fails([{ name: Array.from({ length: 40 }, () => "b".repeat(120)).join("/"), body: "x" }]);
    expect(isInvalidArgument(err)).toBe(true);
    expect(err.message).toMatch(/name too long/);
  });

  it("17. a gzip bomb stops at the size cap without buffering", async () => {
    const rss = process.memoryUsage().rss;
    const err = await applyLayer(sb.root, gzipBomb(1 << 30), { ...opts, maxSize: 64 << 20 }).catch((e) => e);
    expect(isResourceExhausted(err)).toBe(true);
    expect(err.message).toMatch(/exceeds the 67108864-byte limit/);
    expect(process.memoryUsage().rss - rss).toBeLessThan(96 << 20);
  }, 60_000);

  it("18. truncated streams: gzip cut short, tar cut mid-entry, tar without its end marker", async () => {
    const t = await makeTar([
      { name: "big", body: Buffer.alloc(200_000, 7) },
      { name: "after", body: "a" },
    ]);
    const gz = gzip(t);
    const cases: Buffer[] = [gz.subarray(0, gz.length - 20), t.subarray(0, 100_000), t.subarray(0, t.length - 1024)];
    for (const b of cases) {
      const err = await applyLayer(sb.root, chunks(b), opts).catch((e) => e);
      expect(isDataLoss(err), String(err)).toBe(true);
      expect(err.message).toMatch(/truncated/);
    }
  });

  it("19. a diffID mismatch names both digests", async () => {
    const t = await makeTar([{ name: "a", body: "a" }]);
    const expected = sha256(Buffer.from("something else"));
    const err = await applyLayer(sb.root, chunks(t), { ...opts, expectedDiffID: expected }).catch((e) => e);
    expect(isFailedPrecondition(err)).toBe(true);
    expect(err.message).toContain(`apply layer: diffID mismatch: expected ${expected}, got ${sha256(t)}`);
  });

  it("20. a symlink loop", async () => {
    const err = await fails([
      { name: "a", type: "symlink", linkname: "b" },
      { name: "b", type: "symlink", linkname: "a" },
      { name: "a/x", body: "x" },
    ]);
    expect(isInvalidArgument(err)).toBe(true);
    expect(err.message).toMatch(/too many levels of symbolic links/);
  });

  it("21. a corrupt header and an oversized PAX header", async () => {
    const t = await makeTar([{ name: "a", body: "a" }]);
    t[10] = t[10]! ^ 0xff;
    let err = await applyLayer(sb.root, chunks(t), opts).catch((e) => e);
    expect(isInvalidArgument(err)).toBe(true);
    expect(err.message).toMatch(/checksum/);
    err = await fails([{ name: "p", body: "x", pax: { "SCHILY.xattr.user.big": "z".repeat(2 << 20) } }]);
    expect(isInvalidArgument(err)).toBe(true);
    expect(err.message).toMatch(/PAX header of \d+ bytes exceeds/);
  });

  it("22. a file below a regular file", async () => {
    const err = await fails([
      { name: "f", body: "x" },
      { name: "f/g", body: "y" },
    ]);
    expect(isInvalidArgument(err)).toBe(true);
    expect(err.message).toMatch(/not a directory/);
  });

  const dist = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../dist/index.js");
  it.skipIf(isRoot && !fs.existsSync(dist))("23. device nodes when not root", async (ctx) => {
    if (!isRoot) {
      const err = await fails([{ name: "null", type: "character-device", devmajor: 1, devminor: 3 }]);
      expect(isPermissionDenied(err)).toBe(true);
      return;
    }
    // run the apply as nobody in a child process
    const tarball = await makeTar([{ name: "null", type: "character-device", devmajor: 1, devminor: 3 }]);
    const dir = fs.mkdtempSync(path.join(sb.root, "nobody-"));
    fs.chmodSync(sb.dir, 0o755);
    fs.chmodSync(sb.root, 0o755);
    fs.chmodSync(dir, 0o777);
    fs.writeFileSync(path.join(dir, "layer.tar"), tarball);
    const script = `import { applyLayer } from ${JSON.stringify(dist)}; import fs from "node:fs";
      const out = ${JSON.stringify(path.join(dir, "out"))}; fs.mkdirSync(out);
      applyLayer(out, fs.createReadStream(${JSON.stringify(path.join(dir, "layer.tar"))}), { noSameOwner: true })
        .then(() => console.log("applied"), (e) => console.log(e.kind + ": " + e.message));`;
    const r = spawnSync(process.execPath, ["--input-type=module", "-e", script], { uid: 65534, gid: 65534 });
    if (r.stdout.length === 0 && /EACCES|ERR_MODULE_NOT_FOUND|permission denied/i.test(r.stderr.toString())) {
      ctx.skip("the checkout is not readable by nobody");
    }
    expect(r.stdout.toString().trim()).toBe(
      'PermissionDenied: device node "null": creating device nodes needs root: permission denied',
    );
    expect(fs.existsSync(path.join(dir, "out/null"))).toBe(false);
  });
});

describe("hostile layers: the source is released", () => {
  it("24. a failing apply closes the source stream", async () => {
    const t = await makeTar([{ name: "a", body: "a" }, { name: ".wh..." }]);
    const file = path.join(sb.dir, "bad.tar");
    fs.writeFileSync(file, Buffer.concat([t.subarray(0, t.length - 1024), Buffer.alloc(1 << 20), Buffer.alloc(1024)]));
    const rs = fs.createReadStream(file, { highWaterMark: 4096 });
    const err = await applyLayer(sb.root, rs, opts).catch((e) => e);
    expect(isInvalidArgument(err)).toBe(true);
    await new Promise((r) => setImmediate(r));
    expect(rs.destroyed).toBe(true);
    fs.rmSync(file);
  });
});

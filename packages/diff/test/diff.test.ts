import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import zlib from "node:zlib";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { applyLayer, diffDirs } from "../src/index.js";
import { type Sandbox, sandbox, sha256 } from "./helpers.js";

const isRoot = process.geteuid?.() === 0;
let sb: Sandbox;
beforeEach(() => {
  sb = sandbox();
});
afterEach(() => sb.cleanup());

async function collect(s: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const b of s) parts.push(b);
  return Buffer.concat(parts);
}

/** find(1) listing: path, type, mode, owner, size (files), link target, mtime in whole seconds. */
function tree(dir: string): string {
  return execFileSync("find", [".", "-mindepth", "1", "-printf", "%p %y %m %U:%G %s %l %T@\n"], { cwd: dir })
    .toString()
    .split("\n")
    .filter(Boolean)
    .map((l) => {
      const f = l.split(" ");
      if (f[1] === "d") f[4] = "-"; // directory sizes depend on the filesystem's history
      f[6] = String(Math.floor(Number(f[6])));
      return f.join(" ");
    })
    .sort()
    .join("\n");
}

function writeTree(dir: string, files: Record<string, string>): void {
  for (const [name, body] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    fs.writeFileSync(path.join(dir, name), body);
  }
}

describe("diffDirs", () => {
  it("computes a gzip layer (whiteouts for deletions) that applied over lower gives upper", async () => {
    const lower = path.join(sb.dir, "lower");
    const upper = path.join(sb.dir, "upper");
    const empty = path.join(sb.dir, "empty");
    fs.mkdirSync(empty);
    writeTree(lower, {
      "bin/tool": "v1",
      "etc/conf": "a=1",
      "etc/keep": "same",
      "gone/deep/file": "x",
      "will-be-dir": "file",
      "lib/libx.so": "lib",
    });
    fs.symlinkSync("tool", path.join(lower, "bin/alias"));
    execFileSync("cp", ["-a", `${lower}/.`, upper]);
    fs.writeFileSync(path.join(upper, "bin/tool"), "v2 longer");
    fs.rmSync(path.join(upper, "gone"), { recursive: true });
    fs.rmSync(path.join(upper, "etc/conf"));
    fs.rmSync(path.join(upper, "will-be-dir"));
    writeTree(upper, { "will-be-dir/inside": "in", "new/dir/file": "new" });
    fs.linkSync(path.join(upper, "new/dir/file"), path.join(upper, "new/hardlink"));
    fs.chmodSync(path.join(upper, "lib/libx.so"), 0o755);
    fs.rmSync(path.join(upper, "bin/alias"));
    fs.symlinkSync("/bin/tool", path.join(upper, "bin/alias"));
    if (isRoot) fs.lchownSync(path.join(upper, "etc/keep"), 123, 456);
    // deterministic times, whole seconds as the layer keeps them
    const t = new Date("2023-03-03T03:03:03Z");
    execFileSync("find", [upper, lower, "-exec", "touch", "-h", "-d", t.toISOString(), "{}", "+"]);
    fs.utimesSync(path.join(upper, "bin/tool"), t, new Date("2023-04-04T00:00:00Z"));
    fs.utimesSync(path.join(upper, "lib/libx.so"), t, new Date("2023-04-04T00:00:00Z"));

    const base = diffDirs(empty, lower);
    const baseLayer = await collect(base.stream);
    const d = diffDirs(lower, upper);
    const layer = await collect(d.stream);
    const res = await d.result;
    const plain = zlib.gunzipSync(layer);
    expect(res).toMatchObject({
      diffID: sha256(plain),
      digest: sha256(layer),
      size: layer.length,
      uncompressedSize: plain.length,
      mediaType: "application/vnd.oci.image.layer.v1.tar+gzip",
    });

    const file = path.join(sb.dir, "layer.tgz");
    fs.writeFileSync(file, layer);
    const names = execFileSync("tar", ["-tzf", file]).toString().trim().split("\n").sort();
    expect(names).toContain(".wh.gone");
    expect(names).toContain("etc/.wh.conf");
    expect(names).toContain("new/hardlink");
    expect(names.includes("etc/keep")).toBe(isRoot); // unchanged files stay out; as root it was chowned
    expect(names.some((n) => n.startsWith("gone/"))).toBe(false);

    await applyLayer(
      sb.root,
      (async function* () {
        yield baseLayer;
      })(),
      { noSameOwner: !isRoot },
    );
    const applied = await applyLayer(
      sb.root,
      (async function* () {
        yield layer;
      })(),
      { noSameOwner: !isRoot, expectedDiffID: res.diffID },
    );
    expect(applied.diffID).toBe(res.diffID);
    // directory times differ only where apply had to touch a dir the layer did not carry; compare the rest
    const strip = (s: string) =>
      s
        .split("\n")
        .map((l) => (l.split(" ")[1] === "d" ? l.split(" ").slice(0, 4).join(" ") : l))
        .join("\n");
    expect(strip(tree(sb.root))).toBe(strip(tree(upper)));
    const root = fs.lstatSync(path.join(sb.root, "new/hardlink"));
    expect(root.ino).toBe(fs.lstatSync(path.join(sb.root, "new/dir/file")).ino);
  });

  it("produces an empty layer for identical dirs, uncompressed on request", async () => {
    const a = path.join(sb.dir, "a");
    writeTree(a, { "x/y": "z" });
    const b = path.join(sb.dir, "b");
    execFileSync("cp", ["-a", `${a}/.`, b]);
    const d = diffDirs(a, b, { compression: "none" });
    const layer = await collect(d.stream);
    expect(layer.equals(Buffer.alloc(1024))).toBe(true);
    expect((await d.result).diffID).toBe(sha256(Buffer.alloc(1024)));
  });
});

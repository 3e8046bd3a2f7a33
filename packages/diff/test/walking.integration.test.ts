// The walking differ with real mounts (root): Diff between two bind-mounted trees written into the content
// store, applied back; Apply through a temporary mount; Apply onto an overlay upper dir with whiteouts.
import fs from "node:fs";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { LABEL_UNCOMPRESSED, MEDIA_TYPE_LAYER, MEDIA_TYPE_LAYER_GZIP } from "../src/differ.js";
import { createDiffClient } from "../src/proxy/index.js";
import { type Env, makeEnv, putBlob, serveDiff } from "./differ-helpers.js";
import { gzip, makeTar, sha256 } from "./helpers.js";

const ctx = { namespace: "default" };
const isRoot = process.geteuid?.() === 0;

describe.skipIf(!isRoot)("walking differ with mounts", () => {
  let env: Env;
  beforeEach(async () => {
    env = await makeEnv();
  });
  afterEach(() => env.cleanup());

  const dir = (name: string) => {
    const d = path.join(env.dir, name);
    fs.mkdirSync(d, { recursive: true });
    return d;
  };

  it("Diff writes the layer between two bind mounts into the store; applying it reproduces the upper tree", async () => {
    const lower = dir("lower");
    const upper = dir("upper");
    fs.writeFileSync(path.join(lower, "keep"), "same");
    fs.writeFileSync(path.join(lower, "gone"), "bye");
    fs.cpSync(lower, upper, { recursive: true, preserveTimestamps: true });
    fs.rmSync(path.join(upper, "gone"));
    fs.mkdirSync(path.join(upper, "new"));
    fs.writeFileSync(path.join(upper, "new/file"), "hello");
    const client = createDiffClient(serveDiff(env.differ));
    const desc = await client.compare(
      ctx,
      [{ type: "bind", source: lower, options: ["rbind", "ro"] }],
      [{ type: "bind", source: upper, options: ["rbind", "ro"] }],
      { labels: { "test.label": "x" } },
    );
    expect(desc.mediaType).toBe(MEDIA_TYPE_LAYER_GZIP);
    const info = await env.store.info(ctx, desc.digest);
    expect(info.size).toBe(desc.size);
    expect(info.labels["test.label"]).toBe("x");
    expect(info.labels[LABEL_UNCOMPRESSED]).toMatch(/^sha256:[0-9a-f]{64}$/);

    // lower + the layer = upper
    const target = dir("target");
    fs.cpSync(lower, target, { recursive: true });
    const applied = await client.apply(ctx, desc, [{ type: "bind", source: target, options: ["rw"] }]);
    expect(applied.digest).toBe(info.labels[LABEL_UNCOMPRESSED]);
    expect(fs.readdirSync(target).sort()).toEqual(["keep", "new"]);
    expect(fs.readFileSync(path.join(target, "new/file"), "utf8")).toBe("hello");
    // nothing mounted is left behind
    expect(fs.readdirSync(path.join(env.dir, "tmpmounts"))).toEqual([]);
  });

  it("Apply onto a tmpfs goes through a temporary mount", async () => {
    const tar = await makeTar([{ name: "a", body: "a" }]);
    const blob = gzip(tar);
    await putBlob(env.store, blob, sha256(blob));
    const applied = await createDiffClient(serveDiff(env.differ)).apply(
      ctx,
      { mediaType: MEDIA_TYPE_LAYER_GZIP, digest: sha256(blob), size: blob.length },
      [{ type: "tmpfs", source: "tmpfs", options: ["size=1m"] }],
    );
    expect(applied).toEqual({ mediaType: MEDIA_TYPE_LAYER, digest: sha256(tar), size: tar.length });
    expect(fs.readdirSync(path.join(env.dir, "tmpmounts"))).toEqual([]);
  });

  it("Apply onto an overlay mount writes into its upper dir with overlay whiteouts and lower-dir parents", async () => {
    const lower = dir("lower");
    fs.mkdirSync(path.join(lower, "etc"), { mode: 0o700 });
    fs.chmodSync(path.join(lower, "etc"), 0o700);
    fs.chownSync(path.join(lower, "etc"), 1000, 1000);
    fs.writeFileSync(path.join(lower, "etc/old"), "old");
    fs.mkdirSync(path.join(lower, "var"));
    const upper = dir("upper");
    const work = dir("work");
    const tar = await makeTar([
      { name: "etc/.wh.old" },
      { name: "etc/new", body: "new" },
      { name: "var/.wh..wh..opq" },
    ]);
    const blob = gzip(tar);
    await putBlob(env.store, blob, sha256(blob));
    const applied = await createDiffClient(serveDiff(env.differ)).apply(
      ctx,
      { mediaType: MEDIA_TYPE_LAYER_GZIP, digest: sha256(blob), size: blob.length },
      [{ type: "overlay", source: "overlay", options: [`lowerdir=${lower}`, `upperdir=${upper}`, `workdir=${work}`] }],
    );
    expect(applied.digest).toBe(sha256(tar));
    const wh = fs.lstatSync(path.join(upper, "etc/old"));
    expect(wh.isCharacterDevice() && wh.rdev === 0).toBe(true);
    const etc = fs.statSync(path.join(upper, "etc"));
    expect([etc.mode & 0o7777, etc.uid, etc.gid]).toEqual([0o700, 1000, 1000]);
    expect(fs.readFileSync(path.join(upper, "etc/new"), "utf8")).toBe("new");
  });
});

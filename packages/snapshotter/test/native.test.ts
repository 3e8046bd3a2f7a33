import { existsSync } from "node:fs";
import {
  chmod,
  chown,
  link,
  lstat,
  mkdir,
  readdir,
  readlink,
  stat,
  symlink,
  utimes,
  writeFile,
} from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { run } from "../src/internal/exec.js";
import { copyTree, createNativeSnapshotter } from "../src/native/index.js";
import type { Ctx, Snapshotter } from "../src/snapshotter.js";
import { snapshotterSuite } from "../src/testsuite/index.js";
import { onTempRoot, removeRoot, tempRoot } from "./helpers.js";

snapshotterSuite(
  "native",
  onTempRoot("berth-native-", (root) => createNativeSnapshotter({ root })),
);

const ctx: Ctx = { namespace: "default" };

describe("native layout and mounts", () => {
  let root: string;
  let sn: Snapshotter;

  beforeEach(async () => {
    root = await tempRoot("berth-native-layout-");
    sn = createNativeSnapshotter({ root });
  });
  afterEach(async () => {
    await sn.close();
    await removeRoot(root);
  });

  const dir = (id: number) => join(root, "snapshots", String(id));

  it("keeps containerd's layout: snapshots/<id> plain directories; a view of a parent reuses its directory", async () => {
    expect(await sn.prepare(ctx, "a", "")).toEqual([{ type: "bind", source: dir(1), options: ["rbind", "rw"] }]);
    await sn.commit(ctx, "c1", "a");
    expect(await sn.view(ctx, "v", "c1")).toEqual([{ type: "bind", source: dir(1), options: ["rbind", "ro"] }]);
    expect(await sn.prepare(ctx, "b", "c1")).toEqual([{ type: "bind", source: dir(3), options: ["rbind", "rw"] }]);
    expect(await sn.view(ctx, "empty", "")).toEqual([{ type: "bind", source: dir(4), options: ["rbind", "ro"] }]);
    expect(existsSync(join(root, "metadata.db"))).toBe(true);
    expect((await readdir(join(root, "snapshots"))).sort()).toEqual(["1", "3", "4"]);
    expect((await stat(dir(1))).mode & 0o777).toBe(0o755);
    await sn.remove(ctx, "v");
    expect(existsSync(dir(1))).toBe(true);
  });
});

describe("copyTree", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await tempRoot("berth-native-copy-");
  });
  afterEach(async () => {
    await removeRoot(dir);
  });

  it("keeps modes, owners, times, xattrs, symlinks, hard links and device nodes", async (t) => {
    if (process.getuid?.() !== 0) t.skip("device nodes and owners need root");
    const src = join(dir, "src");
    const dst = join(dir, "dst");
    await mkdir(join(src, "sub"), { recursive: true, mode: 0o750 });
    await mkdir(dst);
    await writeFile(join(src, "sub/file"), "data");
    await chown(join(src, "sub/file"), 4321, 8765);
    await chmod(join(src, "sub/file"), 0o2640);
    await link(join(src, "sub/file"), join(src, "hard"));
    await symlink("sub/file", join(src, "sym"));
    await utimes(join(src, "sub/file"), new Date("2001-02-03T04:05:06Z"), new Date("2001-02-03T04:05:06Z"));
    await run("mknod", ["-m", "0600", join(src, "null"), "c", "1", "3"]);
    const py = (code: string) => run("python3", ["-c", code]);
    const hasPython = await py("pass").then(
      () => true,
      () => false,
    );
    if (hasPython) await py(`import os; os.setxattr(${JSON.stringify(join(src, "sub/file"))}, "user.berth", b"v")`);
    await chmod(src, 0o711);

    await copyTree(src, dst);

    expect((await lstat(dst)).mode & 0o7777).toBe(0o711);
    expect((await lstat(join(dst, "sub"))).mode & 0o7777).toBe(0o750);
    const f = await lstat(join(dst, "sub/file"));
    expect(f.mode & 0o7777).toBe(0o2640);
    expect([f.uid, f.gid]).toEqual([4321, 8765]);
    expect(f.mtime.toISOString()).toBe("2001-02-03T04:05:06.000Z");
    expect(f.nlink).toBe(2);
    expect((await lstat(join(dst, "hard"))).ino).toBe(f.ino);
    expect(await readlink(join(dst, "sym"))).toBe("sub/file");
    const dev = await lstat(join(dst, "null"));
    expect(dev.isCharacterDevice()).toBe(true);
    expect(dev.rdev).toBe((await lstat(join(src, "null"))).rdev);
    if (hasPython) {
      const { stdout } = await py(
        `import os; print(os.getxattr(${JSON.stringify(join(dst, "sub/file"))}, "user.berth").decode())`,
      );
      expect(stdout.trim()).toBe("v");
    }
  });
});

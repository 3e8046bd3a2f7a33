import { existsSync } from "node:fs";
import { readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createOverlaySnapshotter, supportsIndex } from "../src/overlay/index.js";
import type { Ctx, Snapshotter } from "../src/snapshotter.js";
import { snapshotterSuite } from "../src/testsuite/index.js";
import { onTempRoot, removeRoot, tempRoot } from "./helpers.js";

snapshotterSuite(
  "overlayfs",
  onTempRoot("berth-overlay-", (root) => createOverlaySnapshotter({ root })),
);

const ctx: Ctx = { namespace: "default" };

describe("overlayfs layout and mounts", () => {
  let root: string;
  let sn: Snapshotter;

  beforeEach(async () => {
    root = await tempRoot("berth-overlay-layout-");
    sn = createOverlaySnapshotter({ root, indexOff: true, userxattr: false });
  });
  afterEach(async () => {
    await sn.close();
    await removeRoot(root);
  });

  const fs = (id: number) => join(root, "snapshots", String(id), "fs");
  const work = (id: number) => join(root, "snapshots", String(id), "work");

  it("keeps containerd's layout: metadata.db and snapshots/<id>/{fs,work} with sequential ids", async () => {
    await sn.prepare(ctx, "a", "");
    await sn.commit(ctx, "c1", "a");
    await sn.view(ctx, "v", "c1");
    expect(existsSync(join(root, "metadata.db"))).toBe(true);
    expect((await readdir(join(root, "snapshots"))).sort()).toEqual(["1", "2"]);
    expect((await readdir(join(root, "snapshots", "1"))).sort()).toEqual(["fs", "work"]);
    expect(await readdir(join(root, "snapshots", "2"))).toEqual(["fs"]);
    expect((await stat(fs(1))).mode & 0o777).toBe(0o755);
    expect((await stat(work(1))).mode & 0o777).toBe(0o711);
  });

  it("never reuses an id and removes the directory with the snapshot", async () => {
    await sn.prepare(ctx, "a", "");
    await sn.remove(ctx, "a");
    await sn.prepare(ctx, "b", "");
    expect(await readdir(join(root, "snapshots"))).toEqual(["2"]);
  });

  it("one layer is a bind mount of its fs (rw for active, ro for a view)", async () => {
    expect(await sn.prepare(ctx, "a", "")).toEqual([{ type: "bind", source: fs(1), options: ["rw", "rbind"] }]);
    expect(await sn.view(ctx, "v", "")).toEqual([{ type: "bind", source: fs(2), options: ["ro", "rbind"] }]);
  });

  it("an active snapshot on parents is an overlay, nearest parent first", async () => {
    await sn.prepare(ctx, "a", "");
    await sn.commit(ctx, "c1", "a");
    await sn.prepare(ctx, "b", "c1");
    await sn.commit(ctx, "c2", "b");
    expect(await sn.prepare(ctx, "top", "c2")).toEqual([
      {
        type: "overlay",
        source: "overlay",
        options: ["index=off", `workdir=${work(3)}`, `upperdir=${fs(3)}`, `lowerdir=${fs(2)}:${fs(1)}`],
      },
    ]);
    expect(await sn.view(ctx, "one", "c1")).toEqual([{ type: "bind", source: fs(1), options: ["ro", "rbind"] }]);
    expect(await sn.view(ctx, "two", "c2")).toEqual([
      { type: "overlay", source: "overlay", options: ["index=off", `lowerdir=${fs(2)}:${fs(1)}`] },
    ]);
  });

  it("adds userxattr and extra mount options when asked, index=off by the kernel's support", async () => {
    const other = await tempRoot("berth-overlay-opts-");
    const o = createOverlaySnapshotter({ root: other, userxattr: true, mountOptions: ["volatile"] });
    try {
      await o.prepare(ctx, "a", "");
      await o.commit(ctx, "c1", "a");
      const [m] = await o.prepare(ctx, "b", "c1");
      const expected = [
        ...(supportsIndex() ? ["index=off"] : []),
        "userxattr",
        `workdir=${join(other, "snapshots/2/work")}`,
        `upperdir=${join(other, "snapshots/2/fs")}`,
        `lowerdir=${join(other, "snapshots/1/fs")}`,
        "volatile",
      ];
      expect(m?.options).toEqual(expected);
    } finally {
      await o.close();
      await removeRoot(other);
    }
  });

  it("keeps its snapshots across a restart", async () => {
    await sn.prepare(ctx, "a", "", { labels: { l: "1" } });
    await sn.commit(ctx, "c1", "a", { labels: { l: "2" } });
    await sn.prepare(ctx, "b", "c1");
    await sn.close();
    sn = createOverlaySnapshotter({ root, indexOff: true, userxattr: false });
    expect(await sn.stat(ctx, "c1")).toMatchObject({ kind: "committed", labels: { l: "2" } });
    expect(await sn.stat(ctx, "b")).toMatchObject({ kind: "active", parent: "c1" });
    await sn.prepare(ctx, "c", "c1");
    expect((await readdir(join(root, "snapshots"))).sort()).toEqual(["1", "2", "3"]);
  });

  it("a failed prepare leaves no directory and no record", async () => {
    await sn.prepare(ctx, "a", "");
    await expect(sn.prepare(ctx, "a", "")).rejects.toThrow(/already exists/);
    expect(await readdir(join(root, "snapshots"))).toEqual(["1"]);
  });

  it("async remove leaves the directory for cleanup, which removes only unreferenced directories", async () => {
    const other = await tempRoot("berth-overlay-async-");
    const o = createOverlaySnapshotter({ root: other, asyncRemove: true });
    try {
      await o.prepare(ctx, "a", "");
      await o.prepare(ctx, "b", "");
      await o.remove(ctx, "a");
      expect((await readdir(join(other, "snapshots"))).sort()).toEqual(["2", "rm-1"]);
      await o.cleanup(ctx);
      expect(await readdir(join(other, "snapshots"))).toEqual(["2"]);
    } finally {
      await o.close();
      await removeRoot(other);
    }
  });
});

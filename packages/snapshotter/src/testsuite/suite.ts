import { execFile } from "node:child_process";
import {
  chmod,
  chown,
  link,
  lstat,
  mkdir,
  mkdtemp,
  readFile,
  readlink,
  rm,
  stat,
  symlink,
  unlink,
  writeFile,
} from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isAlreadyExists, isFailedPrecondition, isInvalidArgument, isNotFound } from "@berth/errdefs";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { mountAll, unmountAll } from "../mount.js";
import { type Ctx, type Info, Kind, type Mount, type Snapshotter, isCleaner } from "../snapshotter.js";

export interface SnapshotterSuiteFixture {
  readonly snapshotter: Snapshotter;
  /** Closes the snapshotter and removes its files (the suite has unmounted everything it mounted). */
  cleanup(): Promise<void>;
}

export type SnapshotterSuiteFactory = () => Promise<SnapshotterSuiteFixture>;

export interface SnapshotterSuiteOptions {
  /** The Ctx the suite passes (default namespace "testsuite"). */
  readonly ctx?: Ctx;
  /** Skip the tests that mount (default: run them when root can mount a tmpfs). */
  readonly mounts?: boolean;
}

let mountProbe: Promise<string | undefined> | undefined;

/**
 * Why mount-based tests cannot run here, or undefined when they can: they need uid 0 and a working mount
 * (a tmpfs mounted and unmounted in a temp dir), as containerd's `testutil.RequiresRoot`.
 */
export function mountUnsupportedReason(): Promise<string | undefined> {
  mountProbe ??= (async () => {
    if (process.getuid?.() !== 0) return "mounting needs root (uid 0)";
    const dir = await mkdtemp(join(tmpdir(), "berth-mount-probe-"));
    try {
      await new Promise<void>((resolve, reject) =>
        execFile("mount", ["-t", "tmpfs", "tmpfs", dir], (err) => (err ? reject(err) : resolve())),
      );
      await unmountAll(dir);
      return undefined;
    } catch (err) {
      return `cannot mount: ${(err as Error).message}`;
    } finally {
      await rm(dir, { recursive: true, force: true }).catch(() => {});
    }
  })();
  return mountProbe;
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error("expected the call to fail");
}

function kindCheck(kind: string, pred: (err: unknown) => boolean) {
  return async (p: Promise<unknown>): Promise<void> => {
    const err = await rejection(p);
    if (!pred(err)) throw new Error(`expected ${kind}, got: ${String((err as Error)?.message ?? err)}`);
  };
}

const expectNotFound = kindCheck("NotFound", isNotFound);
const expectAlreadyExists = kindCheck("AlreadyExists", isAlreadyExists);
const expectFailedPrecondition = kindCheck("FailedPrecondition", isFailedPrecondition);
const expectInvalidArgument = kindCheck("InvalidArgument", isInvalidArgument);

/** File changes of a layer: content (string), a directory (`{ dir: mode }`), or deletion (`null`). */
export type LayerChanges = Record<string, string | { dir: number } | null>;

/**
 * The snapshotter conformance suite (containerd's snapshots testsuite, restated): run it against every
 * Snapshotter and through the gRPC client. `factory` gives a fresh, empty snapshotter per test. Tests that
 * mount run only as root with working mounts; every mount they make is unmounted, also on failure.
 */
export function snapshotterSuite(
  name: string,
  factory: SnapshotterSuiteFactory,
  options: SnapshotterSuiteOptions = {},
): void {
  const ctx: Ctx = options.ctx ?? { namespace: "testsuite" };

  describe(`snapshotter conformance: ${name}`, () => {
    let fixture: SnapshotterSuiteFixture;
    let sn: Snapshotter;
    let targets: string[] = [];

    beforeEach(async () => {
      fixture = await factory();
      sn = fixture.snapshotter;
      targets = [];
    });
    afterEach(async () => {
      for (const target of targets.reverse()) {
        await unmountAll(target, { detach: true }).catch(() => {});
        await rm(target, { recursive: true, force: true }).catch(() => {});
      }
      await fixture.cleanup();
    });

    /** A test that mounts: skipped with the reason when mounting cannot work here. */
    const mountIt = (title: string, fn: () => Promise<void>) =>
      it(title, async (t) => {
        if (options.mounts === false) t.skip("mount tests disabled for this run");
        const reason = await mountUnsupportedReason();
        if (reason !== undefined) t.skip(reason);
        await fn();
      });

    async function withMounted<T>(mounts: readonly Mount[], fn: (dir: string) => Promise<T>): Promise<T> {
      const dir = await mkdtemp(join(tmpdir(), "berth-snapshot-mnt-"));
      targets.push(dir);
      await mountAll(mounts, dir);
      try {
        return await fn(dir);
      } finally {
        await unmountAll(dir);
      }
    }

    async function applyChanges(dir: string, changes: LayerChanges): Promise<void> {
      for (const [path, change] of Object.entries(changes)) {
        const full = join(dir, path);
        if (change === null) await rm(full, { recursive: true });
        else if (typeof change === "string") await writeFile(full, change);
        else await mkdir(full, { mode: change.dir });
      }
    }

    /** Prepares `key` on `parent`, applies the changes through a mount and commits it as `name`. */
    async function layer(name: string, parent: string, changes: LayerChanges): Promise<string> {
      const key = `${name}-active`;
      const mounts = await sn.prepare(ctx, key, parent);
      await withMounted(mounts, (dir) => applyChanges(dir, changes));
      await sn.commit(ctx, name, key);
      return name;
    }

    async function walkAll(filters?: string[]): Promise<Info[]> {
      const out: Info[] = [];
      await sn.walk(ctx, (info) => void out.push(info), filters);
      return out;
    }

    const names = (infos: Info[]) => infos.map((i) => i.name);

    describe("kinds and parents", () => {
      it("prepare with no parent makes an active snapshot and returns its mounts", async () => {
        const mounts = await sn.prepare(ctx, "a", "", { labels: { x: "1" } });
        expect(mounts.length).toBeGreaterThan(0);
        for (const m of mounts) {
          expect(typeof m.type).toBe("string");
          expect(Array.isArray(m.options)).toBe(true);
        }
        const info = await sn.stat(ctx, "a");
        expect(info).toMatchObject({ name: "a", parent: "", kind: Kind.Active, labels: { x: "1" } });
        expect(info.createdAt).toBeInstanceOf(Date);
        expect(info.updatedAt.getTime()).toBeGreaterThanOrEqual(info.createdAt.getTime());
        expect(await sn.mounts(ctx, "a")).toEqual(mounts);
      });

      it("commit turns the active snapshot into a committed one under the new name", async () => {
        await sn.prepare(ctx, "a", "", { labels: { dropped: "yes" } });
        await sn.commit(ctx, "c1", "a", { labels: { kept: "yes" } });
        const info = await sn.stat(ctx, "c1");
        expect(info).toMatchObject({ name: "c1", parent: "", kind: Kind.Committed, labels: { kept: "yes" } });
        await expectNotFound(sn.stat(ctx, "a"));
        await expectFailedPrecondition(sn.mounts(ctx, "c1"));
      });

      it("prepare and view on a committed parent record the parent", async () => {
        await sn.prepare(ctx, "a", "");
        await sn.commit(ctx, "c1", "a");
        await sn.prepare(ctx, "b", "c1");
        await sn.commit(ctx, "c2", "b");
        await sn.prepare(ctx, "active", "c2");
        await sn.view(ctx, "view", "c2");
        expect(await sn.stat(ctx, "c2")).toMatchObject({ parent: "c1", kind: Kind.Committed });
        expect(await sn.stat(ctx, "active")).toMatchObject({ parent: "c2", kind: Kind.Active });
        expect(await sn.stat(ctx, "view")).toMatchObject({ parent: "c2", kind: Kind.View });
        expect((await sn.mounts(ctx, "view")).length).toBeGreaterThan(0);
      });

      it("a view with no parent is an empty read-only snapshot", async () => {
        const mounts = await sn.view(ctx, "v", "");
        expect(mounts.length).toBeGreaterThan(0);
        expect(await sn.stat(ctx, "v")).toMatchObject({ name: "v", parent: "", kind: Kind.View });
      });

      it("the parent must be committed (InvalidArgument)", async () => {
        await sn.prepare(ctx, "a", "");
        await sn.view(ctx, "v", "");
        await expectInvalidArgument(sn.prepare(ctx, "b", "a"));
        await expectInvalidArgument(sn.view(ctx, "b", "v"));
        await expectNotFound(sn.stat(ctx, "b"));
      });

      it("only an active snapshot can be committed (FailedPrecondition)", async () => {
        await sn.prepare(ctx, "a", "");
        await sn.commit(ctx, "c1", "a");
        await sn.view(ctx, "v", "c1");
        await expectFailedPrecondition(sn.commit(ctx, "c2", "v"));
        await expectFailedPrecondition(sn.commit(ctx, "c3", "c1"));
        expect((await sn.stat(ctx, "v")).kind).toBe(Kind.View);
        await expectNotFound(sn.stat(ctx, "c2"));
      });
    });

    describe("errors", () => {
      it("a key or name in use is AlreadyExists and nothing changes", async () => {
        await sn.prepare(ctx, "a", "", { labels: { first: "1" } });
        await expectAlreadyExists(sn.prepare(ctx, "a", ""));
        await expectAlreadyExists(sn.view(ctx, "a", ""));
        await sn.prepare(ctx, "b", "");
        await sn.commit(ctx, "c1", "b");
        await expectAlreadyExists(sn.prepare(ctx, "c1", ""));
        await sn.prepare(ctx, "d", "");
        await expectAlreadyExists(sn.commit(ctx, "c1", "d"));
        await expectAlreadyExists(sn.commit(ctx, "a", "d"));
        expect(await sn.stat(ctx, "a")).toMatchObject({ kind: Kind.Active, labels: { first: "1" } });
        expect((await sn.stat(ctx, "d")).kind).toBe(Kind.Active);
        expect(names(await walkAll())).toEqual(["a", "c1", "d"]);
      });

      it("missing snapshots are NotFound", async () => {
        await expectNotFound(sn.stat(ctx, "nope"));
        await expectNotFound(sn.mounts(ctx, "nope"));
        await expectNotFound(sn.usage(ctx, "nope"));
        await expectNotFound(sn.remove(ctx, "nope"));
        await expectNotFound(sn.commit(ctx, "c", "nope"));
        await expectNotFound(sn.update(ctx, { name: "nope", labels: { a: "b" } }, ["labels.a"]));
        await expectNotFound(sn.prepare(ctx, "a", "nope"));
        await expectNotFound(sn.view(ctx, "v", "nope"));
        expect(await walkAll()).toEqual([]);
      });

      it("an empty key is InvalidArgument", async () => {
        await expectInvalidArgument(sn.prepare(ctx, "", ""));
        await expectInvalidArgument(sn.view(ctx, "", ""));
        await sn.prepare(ctx, "a", "");
        await expectInvalidArgument(sn.commit(ctx, "", "a"));
      });
    });

    describe("remove", () => {
      it("a snapshot with children cannot be removed (FailedPrecondition)", async () => {
        await sn.prepare(ctx, "a", "");
        await sn.commit(ctx, "c1", "a");
        await sn.prepare(ctx, "child", "c1");
        await sn.view(ctx, "view", "c1");
        await expectFailedPrecondition(sn.remove(ctx, "c1"));
        await sn.remove(ctx, "child");
        await expectFailedPrecondition(sn.remove(ctx, "c1"));
        await sn.remove(ctx, "view");
        expect((await sn.stat(ctx, "c1")).kind).toBe(Kind.Committed);
        await sn.remove(ctx, "c1");
        await expectNotFound(sn.stat(ctx, "c1"));
        expect(await walkAll()).toEqual([]);
      });

      it("removes every kind and frees the key for reuse", async () => {
        await sn.prepare(ctx, "a", "");
        await sn.commit(ctx, "c1", "a");
        await sn.prepare(ctx, "a", "c1");
        await sn.view(ctx, "v", "c1");
        await sn.remove(ctx, "a");
        await sn.remove(ctx, "v");
        await sn.prepare(ctx, "a", "");
        await sn.view(ctx, "v", "");
        expect(await sn.stat(ctx, "a")).toMatchObject({ parent: "", kind: Kind.Active });
        expect(await sn.stat(ctx, "v")).toMatchObject({ parent: "", kind: Kind.View });
      });
    });

    describe("labels", () => {
      it("update sets, removes and replaces labels by field path", async () => {
        await sn.prepare(ctx, "a", "", { labels: { keep: "1", drop: "2" } });
        const before = await sn.stat(ctx, "a");
        let info = await sn.update(ctx, { name: "a", labels: { added: "3", drop: "" } }, [
          "labels.added",
          "labels.drop",
        ]);
        expect(info.labels).toEqual({ keep: "1", added: "3" });
        expect(info.updatedAt.getTime()).toBeGreaterThanOrEqual(before.updatedAt.getTime());
        expect(info.createdAt.getTime()).toBe(before.createdAt.getTime());
        info = await sn.update(ctx, { name: "a", labels: { only: "x" } }, ["labels"]);
        expect(info.labels).toEqual({ only: "x" });
        info = await sn.update(ctx, { name: "a", labels: { all: "y" } });
        expect(info.labels).toEqual({ all: "y" });
        expect((await sn.stat(ctx, "a")).labels).toEqual({ all: "y" });
      });

      it("a field path other than labels is InvalidArgument and changes nothing", async () => {
        await sn.prepare(ctx, "a", "", { labels: { keep: "1" } });
        await expectInvalidArgument(sn.update(ctx, { name: "a", labels: { x: "1" } }, ["labels.x", "parent"]));
        await expectInvalidArgument(sn.update(ctx, { name: "a", labels: {} }, ["name"]));
        expect((await sn.stat(ctx, "a")).labels).toEqual({ keep: "1" });
      });

      it("labels of committed snapshots can be updated", async () => {
        await sn.prepare(ctx, "a", "");
        await sn.commit(ctx, "c1", "a", { labels: { "containerd.io/snapshot/x": "y" } });
        const info = await sn.update(ctx, { name: "c1", labels: { z: "1" } }, ["labels.z"]);
        expect(info).toMatchObject({ kind: Kind.Committed, labels: { "containerd.io/snapshot/x": "y", z: "1" } });
      });
    });

    describe("walk", () => {
      beforeEach(async () => {
        await sn.prepare(ctx, "base-a", "", { labels: { tier: "base" } });
        await sn.commit(ctx, "base", "base-a", { labels: { tier: "base", "a.b": "dotted" } });
        await sn.prepare(ctx, "mid-a", "base");
        await sn.commit(ctx, "mid", "mid-a", { labels: { tier: "mid" } });
        await sn.prepare(ctx, "work", "mid", { labels: { tier: "top" } });
        await sn.view(ctx, "look", "base");
      });

      it("visits every snapshot sorted by key", async () => {
        const infos = await walkAll();
        expect(names(infos)).toEqual(["base", "look", "mid", "work"]);
        expect(infos.map((i) => i.parent)).toEqual(["", "base", "base", "mid"]);
        expect(names(await walkAll([]))).toEqual(["base", "look", "mid", "work"]);
        expect(names(await walkAll([""]))).toEqual(["base", "look", "mid", "work"]);
      });

      it("filters by name, parent, kind and labels; separate filters are OR-ed", async () => {
        expect(names(await walkAll(["kind==committed"]))).toEqual(["base", "mid"]);
        expect(names(await walkAll(["kind==active"]))).toEqual(["work"]);
        expect(names(await walkAll(["kind==view"]))).toEqual(["look"]);
        expect(names(await walkAll(["name==mid"]))).toEqual(["mid"]);
        expect(names(await walkAll(["parent==base"]))).toEqual(["look", "mid"]);
        expect(names(await walkAll(["labels.tier==top"]))).toEqual(["work"]);
        expect(names(await walkAll(['labels."a.b"==dotted']))).toEqual(["base"]);
        expect(names(await walkAll(["labels.tier"]))).toEqual(["base", "mid", "work"]);
        expect(names(await walkAll(["kind==committed,labels.tier==mid"]))).toEqual(["mid"]);
        expect(names(await walkAll(["name==look", "labels.tier==top"]))).toEqual(["look", "work"]);
        expect(names(await walkAll(["name~=^m"]))).toEqual(["mid"]);
        expect(names(await walkAll(["kind!=committed"]))).toEqual(["look", "work"]);
      });

      it("a malformed filter is InvalidArgument", async () => {
        await expectInvalidArgument(walkAll(["name=="]).then(() => walkAll(["labels.=x"])));
      });

      it("waits for an async callback before the next", async () => {
        const seen: string[] = [];
        await sn.walk(ctx, async (info) => {
          await new Promise((r) => setTimeout(r, 1));
          seen.push(info.name);
        });
        expect(seen).toEqual(["base", "look", "mid", "work"]);
      });
    });

    describe("concurrency and cleanup", () => {
      it("parallel prepares of different keys all succeed; of one key exactly one does", async () => {
        await Promise.all(Array.from({ length: 8 }, (_, i) => sn.prepare(ctx, `k${i}`, "")));
        expect((await walkAll()).length).toBe(8);
        const results = await Promise.allSettled(Array.from({ length: 6 }, () => sn.prepare(ctx, "same", "")));
        expect(results.filter((r) => r.status === "fulfilled").length).toBe(1);
        for (const r of results) if (r.status === "rejected") expect(isAlreadyExists(r.reason)).toBe(true);
      });

      it("cleanup (when implemented) keeps every live snapshot", async () => {
        if (!isCleaner(sn)) return;
        await sn.prepare(ctx, "a", "");
        await sn.commit(ctx, "c1", "a");
        await sn.prepare(ctx, "b", "c1");
        await sn.prepare(ctx, "gone", "");
        await sn.remove(ctx, "gone");
        await sn.cleanup(ctx);
        expect(names(await walkAll())).toEqual(["b", "c1"]);
        expect((await sn.usage(ctx, "b")).inodes).toBeGreaterThan(0);
      });

      it("usage of an empty snapshot counts its root", async () => {
        await sn.prepare(ctx, "a", "");
        const u = await sn.usage(ctx, "a");
        expect(u.inodes).toBeGreaterThanOrEqual(1);
        expect(u.size).toBeGreaterThanOrEqual(0);
        await sn.commit(ctx, "c1", "a");
        expect(await sn.usage(ctx, "c1")).toEqual(u);
      });
    });

    describe("contents through mounts", () => {
      mountIt("files written to an active snapshot are in the committed layer and its views", async () => {
        await layer("c1", "", { "hello.txt": "hello", etc: { dir: 0o750 }, "etc/conf": "x=1" });
        const mounts = await sn.view(ctx, "v", "c1");
        await withMounted(mounts, async (dir) => {
          expect(await readFile(join(dir, "hello.txt"), "utf8")).toBe("hello");
          expect(await readFile(join(dir, "etc/conf"), "utf8")).toBe("x=1");
          expect((await stat(join(dir, "etc"))).mode & 0o7777).toBe(0o750);
          await expect(writeFile(join(dir, "new"), "x")).rejects.toMatchObject({ code: "EROFS" });
        });
      });

      mountIt("a chain of layers shows additions, changes and deletions of each layer", async () => {
        await layer("l1", "", { a: "a1", b: "b1", d: { dir: 0o755 }, "d/in": "in1" });
        await layer("l2", "l1", { a: "a2", c: "c2", b: null });
        await layer("l3", "l2", { "d/in": null, e: "e3", c: "c3" });
        await withMounted(await sn.view(ctx, "v3", "l3"), async (dir) => {
          expect(await readFile(join(dir, "a"), "utf8")).toBe("a2");
          expect(await readFile(join(dir, "c"), "utf8")).toBe("c3");
          expect(await readFile(join(dir, "e"), "utf8")).toBe("e3");
          await expect(stat(join(dir, "b"))).rejects.toMatchObject({ code: "ENOENT" });
          await expect(stat(join(dir, "d/in"))).rejects.toMatchObject({ code: "ENOENT" });
          expect((await stat(join(dir, "d"))).isDirectory()).toBe(true);
        });
        await withMounted(await sn.view(ctx, "v2", "l2"), async (dir) => {
          expect(await readFile(join(dir, "c"), "utf8")).toBe("c2");
          expect(await readFile(join(dir, "d/in"), "utf8")).toBe("in1");
          await expect(stat(join(dir, "e"))).rejects.toMatchObject({ code: "ENOENT" });
        });
        await withMounted(await sn.view(ctx, "v1", "l1"), async (dir) => {
          expect(await readFile(join(dir, "a"), "utf8")).toBe("a1");
          expect(await readFile(join(dir, "b"), "utf8")).toBe("b1");
        });
      });

      mountIt("an active snapshot starts with its parent's content and its writes stay in it", async () => {
        await layer("base", "", { shared: "base" });
        const one = await sn.prepare(ctx, "one", "base");
        const two = await sn.prepare(ctx, "two", "base");
        await withMounted(one, async (d1) => {
          await withMounted(two, async (d2) => {
            expect(await readFile(join(d1, "shared"), "utf8")).toBe("base");
            await writeFile(join(d1, "shared"), "one");
            await unlink(join(d2, "shared"));
            expect(await readFile(join(d1, "shared"), "utf8")).toBe("one");
            await expect(stat(join(d2, "shared"))).rejects.toMatchObject({ code: "ENOENT" });
          });
        });
        await withMounted(await sn.mounts(ctx, "one"), async (dir) => {
          expect(await readFile(join(dir, "shared"), "utf8")).toBe("one");
        });
        await withMounted(await sn.view(ctx, "v", "base"), async (dir) => {
          expect(await readFile(join(dir, "shared"), "utf8")).toBe("base");
        });
      });

      mountIt("modes, owners, symlinks and hard links survive commit", async () => {
        await layer("base", "", { bin: { dir: 0o755 } });
        const mounts = await sn.prepare(ctx, "a", "base");
        await withMounted(mounts, async (dir) => {
          await writeFile(join(dir, "bin/tool"), "#!/bin/sh\n");
          // chown clears set-uid, so the mode goes second.
          await chown(join(dir, "bin/tool"), 1234, 5678);
          await chmod(join(dir, "bin/tool"), 0o4755);
          await symlink("tool", join(dir, "bin/alias"));
          await link(join(dir, "bin/tool"), join(dir, "bin/hard"));
          await mkdir(join(dir, "private"), { mode: 0o700 });
        });
        await sn.commit(ctx, "top", "a");
        await withMounted(await sn.view(ctx, "v", "top"), async (dir) => {
          const st = await lstat(join(dir, "bin/tool"));
          expect(st.mode & 0o7777).toBe(0o4755);
          expect([st.uid, st.gid]).toEqual([1234, 5678]);
          expect(await readlink(join(dir, "bin/alias"))).toBe("tool");
          const hard = await lstat(join(dir, "bin/hard"));
          expect(hard.ino).toBe(st.ino);
          expect(hard.nlink).toBe(2);
          expect((await lstat(join(dir, "private"))).mode & 0o7777).toBe(0o700);
        });
      });

      mountIt("usage counts what the layer holds and is kept at commit", async () => {
        const mounts = await sn.prepare(ctx, "a", "");
        const empty = await sn.usage(ctx, "a");
        await withMounted(mounts, async (dir) => {
          await mkdir(join(dir, "d"));
          await writeFile(join(dir, "d/blob"), Buffer.alloc(256 * 1024, 7));
        });
        const used = await sn.usage(ctx, "a");
        expect(used.inodes).toBe(empty.inodes + 2);
        expect(used.size).toBeGreaterThanOrEqual(empty.size + 256 * 1024);
        await sn.commit(ctx, "c1", "a");
        expect(await sn.usage(ctx, "c1")).toEqual(used);

        const child = await sn.prepare(ctx, "b", "c1");
        const before = await sn.usage(ctx, "b");
        await withMounted(child, async (dir) => {
          await writeFile(join(dir, "more"), Buffer.alloc(128 * 1024, 1));
        });
        const after = await sn.usage(ctx, "b");
        expect(after.inodes).toBe(before.inodes + 1);
        expect(after.size).toBeGreaterThanOrEqual(before.size + 128 * 1024);
      });

      mountIt("mounts of a removed snapshot's sibling keep working", async () => {
        await layer("base", "", { f: "base" });
        await sn.prepare(ctx, "gone", "base");
        const keep = await sn.prepare(ctx, "keep", "base");
        await sn.remove(ctx, "gone");
        if (isCleaner(sn)) await sn.cleanup(ctx);
        await withMounted(keep, async (dir) => {
          expect(await readFile(join(dir, "f"), "utf8")).toBe("base");
        });
      });
    });
  });
}

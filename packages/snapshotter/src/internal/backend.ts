/**
 * What the overlayfs and native snapshotters share: the metadata store at `<root>/metadata.db`, snapshot
 * directories at `<root>/snapshots/<id>` built as `snapshots/new-XXXX` and renamed into place inside the
 * transaction that records them, removal by rename to `snapshots/rm-<id>` then delete, and Cleanup of any
 * directory no snapshot refers to.
 */
import { existsSync, mkdirSync, renameSync } from "node:fs";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { InternalError, fromNodeError } from "@berth/errdefs";
import { CommandError } from "./exec.js";
import { type Cleaner, type Ctx, type Info, Kind, type Mount, type Snapshotter, type Usage } from "../snapshotter.js";
import { withoutEmpty } from "./labels.js";
import { MetaStore, type Snapshot } from "./storage.js";
import { diskUsage } from "./usage.js";

export interface Layout {
  /** Whether a snapshot of this kind on these parents gets its own directory. */
  needsDir(kind: Kind, parentIds: readonly string[]): boolean;
  /** Fills the new directory `dir` (not yet named by id). */
  populate(dir: string, kind: Kind, parentIds: readonly string[]): Promise<void>;
  /** Synchronous last touches inside the recording transaction (e.g. chown to the parent's owner). */
  finish?(dir: string, s: Snapshot): void;
  mounts(s: Snapshot): Mount[];
  /** The directory whose disk usage is the snapshot's usage. */
  usagePath(id: string): string;
}

export interface BackendOptions {
  readonly root: string;
  /** Leave removed directories for Cleanup instead of deleting them in Remove (containerd's async_remove). */
  readonly asyncRemove?: boolean;
}

export type BackendSnapshotter = Snapshotter & Cleaner & { readonly root: string };

/** Node and command errors as typed errors (errdefs kinds pass through). */
function asTyped(err: unknown, what: string): unknown {
  if (err instanceof CommandError) return new InternalError(`${what}: ${err.message}`, { cause: err });
  if (err instanceof Error && typeof (err as NodeJS.ErrnoException).code === "string") {
    return fromNodeError(err, `${what}: ${err.message}`);
  }
  return err;
}

function ignoreMissing(err: unknown): void {
  if ((err as NodeJS.ErrnoException)?.code !== "ENOENT") throw err;
}

export function createBackend(options: BackendOptions, layout: Layout): BackendSnapshotter {
  const root = options.root;
  const snapshotsDir = join(root, "snapshots");
  mkdirSync(snapshotsDir, { recursive: true, mode: 0o700 });
  // Opened on first use: opening and migrating SQLite is a noticeable share of the daemon's start-up.
  let opened: MetaStore | undefined;
  const dbPath = join(root, "metadata.db");
  const store = (): MetaStore => {
    opened ??= new MetaStore(dbPath);
    return opened;
  };
  /** Directories being built or removed, left alone by Cleanup. */
  const busy = new Set<string>();
  const dirOf = (id: string) => join(snapshotsDir, id);

  async function create(kind: "active" | "view", key: string, parent: string, labels?: Record<string, string>) {
    const parentIds = store().checkCreate(key, parent);
    const withDir = layout.needsDir(kind, parentIds);
    let td: string | undefined;
    try {
      if (withDir) {
        td = await mkdtemp(join(snapshotsDir, "new-"));
        busy.add(td);
        await layout.populate(td, kind, parentIds);
      }
      const s = store().createSnapshot(kind, key, parent, withoutEmpty(labels), (s) => {
        if (td === undefined) return;
        layout.finish?.(td, s);
        renameSync(td, dirOf(s.id));
      });
      if (td !== undefined) busy.delete(td);
      td = undefined;
      return layout.mounts(s);
    } catch (err) {
      throw asTyped(err, `prepare snapshot ${key}`);
    } finally {
      if (td !== undefined) {
        await rm(td, { recursive: true, force: true }).catch(() => {});
        busy.delete(td);
      }
    }
  }

  async function removeDir(dir: string): Promise<void> {
    busy.add(dir);
    try {
      await rm(dir, { recursive: true, force: true });
    } finally {
      busy.delete(dir);
    }
  }

  const sn: BackendSnapshotter = {
    root,

    async stat(_ctx: Ctx, key: string): Promise<Info> {
      return store().getInfo(key).info;
    },

    async update(_ctx, info, fieldpaths) {
      return store().update(info.name, info.labels ?? {}, fieldpaths);
    },

    async usage(_ctx, key): Promise<Usage> {
      const { id, info, usage } = store().getInfo(key);
      if (info.kind !== Kind.Active) return usage;
      try {
        return await diskUsage(layout.usagePath(id));
      } catch (err) {
        throw fromNodeError(err, `usage of snapshot ${key}`);
      }
    },

    async mounts(_ctx, key) {
      return layout.mounts(store().getSnapshot(key));
    },

    prepare(_ctx, key, parent, opts) {
      return create(Kind.Active, key, parent, opts?.labels);
    },

    view(_ctx, key, parent, opts) {
      return create(Kind.View, key, parent, opts?.labels);
    },

    async commit(_ctx, name, key, opts) {
      const s = store().checkCommit(name, key);
      let usage: Usage;
      try {
        usage = await diskUsage(layout.usagePath(s.id));
      } catch (err) {
        throw fromNodeError(err, `usage of snapshot ${key}`);
      }
      store().commitActive(key, name, usage, withoutEmpty(opts?.labels));
    },

    async remove(_ctx, key) {
      let moved: string | undefined;
      try {
        store().remove(key, (s) => {
          const target = join(snapshotsDir, `rm-${s.id}`);
          try {
            renameSync(dirOf(s.id), target);
            moved = target;
          } catch (err) {
            ignoreMissing(err);
          }
        });
      } catch (err) {
        throw asTyped(err, `remove snapshot ${key}`);
      }
      if (moved !== undefined && !options.asyncRemove) await removeDir(moved);
    },

    async walk(_ctx, fn, filters) {
      // The collector walks every snapshotter after each deletion: one never used has no snapshots, and opening
      // (creating) its database just for that costs over 100 ms once on a busy disk.
      if (opened === undefined && !existsSync(dbPath)) return;
      for (const info of store().walk(filters)) await fn(info);
    },

    async cleanup() {
      const ids = store().ids();
      const names = await readdir(snapshotsDir);
      for (const name of names) {
        const dir = join(snapshotsDir, name);
        if (ids.has(name) || busy.has(dir)) continue;
        await removeDir(dir);
      }
    },

    async close() {
      opened?.close();
    },
  };
  return sn;
}

/**
 * The native snapshotter in containerd's layout (`<root>/metadata.db`, `<root>/snapshots/<id>`): an active
 * snapshot is a full copy of its parent's tree; a view of a committed snapshot reuses the parent's directory.
 * Mounts are rbind mounts (`ro` for views).
 */
import { chmod } from "node:fs/promises";
import { join } from "node:path";
import { type BackendSnapshotter, createBackend } from "../internal/backend.js";
import { run } from "../internal/exec.js";
import { Kind, type Mount } from "../snapshotter.js";

export interface NativeSnapshotterOptions {
  /** The snapshotter's root (`<berth root>/io.containerd.snapshotter.v1.native`). */
  readonly root: string;
  /** Leave removed directories for Cleanup (containerd's `async_remove`). */
  readonly asyncRemove?: boolean;
}

export type NativeSnapshotter = BackendSnapshotter;

/**
 * Copies the tree `from` onto the existing directory `to` with everything a layer carries: modes, owners,
 * times, xattrs, ACLs, symlinks, hard links, device nodes, sparse files; reflinks where the filesystem can.
 * GNU `cp -a` does all of it in one process (Node has no xattr API, and its `fs.cp` drops owners, xattrs and
 * hard links).
 */
export async function copyTree(from: string, to: string): Promise<void> {
  await run("cp", ["-a", "--reflink=auto", "--", `${from}/.`, `${to}/`]);
}

export function createNativeSnapshotter(options: NativeSnapshotterOptions): NativeSnapshotter {
  const dir = (id: string) => join(options.root, "snapshots", id);
  return createBackend(options, {
    needsDir: (kind, parentIds) => kind === Kind.Active || parentIds.length === 0,

    async populate(target, _kind, parentIds) {
      const parent = parentIds[0];
      if (parent === undefined) await chmod(target, 0o755);
      else await copyTree(dir(parent), target);
    },

    mounts(s): Mount[] {
      const source = s.parentIds.length === 0 || s.kind === Kind.Active ? dir(s.id) : dir(s.parentIds[0]!);
      return [{ type: "bind", source, options: ["rbind", s.kind === Kind.View ? "ro" : "rw"] }];
    },

    usagePath: dir,
  });
}

/**
 * The overlayfs snapshotter in containerd's layout (`<root>/metadata.db`, `<root>/snapshots/<id>/{fs,work}`).
 * One layer is a bind mount of its `fs`; more are an `overlay` with the parents' `fs` as lowerdirs (nearest
 * first) and, for an active snapshot, its own `fs` as upperdir and `work` as workdir.
 */
import { existsSync, lstatSync, lchownSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, statfs } from "node:fs/promises";
import { join } from "node:path";
import { type BackendSnapshotter, createBackend } from "../internal/backend.js";
import { runningInUserNS } from "../internal/userns.js";
import { mount, unmountAll } from "../mount.js";
import { Kind, type Mount } from "../snapshotter.js";

export interface OverlaySnapshotterOptions {
  /** The snapshotter's root (`<berth root>/io.containerd.snapshotter.v1.overlayfs`). */
  readonly root: string;
  /** Add `index=off` (default: when the kernel has the overlay `index` parameter, as containerd). */
  readonly indexOff?: boolean;
  /** Add `userxattr` (default: when running in a user namespace, as containerd on kernels >= 5.11). */
  readonly userxattr?: boolean;
  /** Extra overlay options appended to every overlay mount (containerd's `mount_options`). */
  readonly mountOptions?: readonly string[];
  /** Leave removed directories for Cleanup (containerd's `async_remove`). */
  readonly asyncRemove?: boolean;
}

export type OverlaySnapshotter = BackendSnapshotter;

/** Whether the kernel supports the overlay `index` option (containerd's `supportsIndex`). */
export function supportsIndex(): boolean {
  return existsSync("/sys/module/overlay/parameters/index");
}

export function createOverlaySnapshotter(options: OverlaySnapshotterOptions): OverlaySnapshotter {
  const snapshotsDir = join(options.root, "snapshots");
  const upper = (id: string) => join(snapshotsDir, id, "fs");
  const work = (id: string) => join(snapshotsDir, id, "work");
  const base: string[] = [];
  if (options.indexOff ?? supportsIndex()) base.push("index=off");
  if (options.userxattr ?? runningInUserNS()) base.push("userxattr");
  const extra = [...(options.mountOptions ?? [])];

  return createBackend(options, {
    needsDir: () => true,

    async populate(dir, kind) {
      await mkdir(join(dir, "fs"), { mode: 0o755 });
      if (kind === Kind.Active) await mkdir(join(dir, "work"), { mode: 0o711 });
    },

    finish(dir, s) {
      // A new layer's root belongs to the parent's root owner (containerd does the same).
      const parent = s.parentIds[0];
      if (parent === undefined) return;
      const st = lstatSync(upper(parent));
      lchownSync(join(dir, "fs"), st.uid, st.gid);
    },

    mounts(s): Mount[] {
      if (s.parentIds.length === 0) {
        return [{ type: "bind", source: upper(s.id), options: [s.kind === Kind.View ? "ro" : "rw", "rbind"] }];
      }
      const opts = [...base];
      if (s.kind === Kind.Active) {
        opts.push(`workdir=${work(s.id)}`, `upperdir=${upper(s.id)}`);
      } else if (s.parentIds.length === 1) {
        return [{ type: "bind", source: upper(s.parentIds[0]!), options: ["ro", "rbind"] }];
      }
      opts.push(`lowerdir=${s.parentIds.map(upper).join(":")}`, ...extra);
      return [{ type: "overlay", source: "overlay", options: opts }];
    },

    usagePath: upper,
  });
}

/**
 * Whether overlay mounts work with `root`'s filesystem as upper (containerd's `overlayutils.Supported`):
 * mounts a two-layer overlay in a temp dir under `root`. Returns the reason when they do not.
 */
/** statfs magic numbers of filesystems that take an overlay upper dir (ext4/ext3/ext2, xfs, btrfs, tmpfs). */
const GOOD_UPPER_FS = new Set([0xef53, 0x58465342, 0x9123683e, 0x01021994]);

/**
 * The cheap answer, for a daemon's start-up: outside a user namespace, with overlay in /proc/filesystems and the
 * root on a filesystem known to take an upper dir, a test mount (two mount(8) runs, ~100 ms here) is not needed.
 */
async function overlayKnownToWork(root: string): Promise<boolean> {
  if (runningInUserNS()) return false;
  try {
    const filesystems = await readFile("/proc/filesystems", "utf8");
    if (!/\toverlay$/m.test(filesystems)) return false;
    return GOOD_UPPER_FS.has((await statfs(root)).type);
  } catch {
    return false;
  }
}

export async function checkOverlaySupport(root: string): Promise<string | undefined> {
  await mkdir(root, { recursive: true });
  if (await overlayKnownToWork(root)) return undefined;
  const dir = await mkdtemp(join(root, "overlay-check-"));
  const merged = join(dir, "merged");
  try {
    for (const d of ["lower1", "lower2", "upper", "work", "merged"]) await mkdir(join(dir, d));
    const opts = [`lowerdir=${join(dir, "lower2")}:${join(dir, "lower1")}`, `upperdir=${join(dir, "upper")}`];
    opts.push(`workdir=${join(dir, "work")}`);
    if (runningInUserNS()) opts.push("userxattr");
    await mount({ type: "overlay", source: "overlay", options: opts }, merged);
    await unmountAll(merged);
    return undefined;
  } catch (err) {
    return `overlay mounts are not supported on ${root}: ${(err as Error).message}`;
  } finally {
    await unmountAll(merged, { detach: true }).catch(() => {});
    await rm(dir, { recursive: true, force: true }).catch(() => {});
  }
}

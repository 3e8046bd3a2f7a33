/**
 * Mounting snapshot mounts (containerd's core/mount, Linux): mount(8) and umount(8) run as child processes
 * (no shell). Bind mounts with `ro` become read-only in one call (util-linux remounts them).
 */
import { readFile } from "node:fs/promises";
import { realpath } from "node:fs/promises";
import { join, relative, sep } from "node:path";
import {
  type BerthError,
  FailedPreconditionError,
  InternalError,
  InvalidArgumentError,
  PermissionDeniedError,
} from "@berth/errdefs";
import { CommandError, run } from "./internal/exec.js";
import type { Mount } from "./snapshotter.js";

/** The kernel limit on the mount data (one page); longer overlay options are compacted. */
const MAX_MOUNT_DATA = 4096;

function mountError(what: string, err: unknown): BerthError {
  if (!(err instanceof CommandError)) return new InternalError(what, { cause: err });
  const text = `${what}: ${err.stderr.trim() || err.message}`;
  if (/permission denied|must be superuser|operation not permitted/i.test(err.stderr)) {
    return new PermissionDeniedError(text, { cause: err });
  }
  if (/busy/i.test(err.stderr)) return new FailedPreconditionError(text, { cause: err });
  return new InternalError(text, { cause: err });
}

/**
 * When the options are too long for one page, rewrites `lowerdir=` entries relative to their common parent
 * directory and returns that directory as the cwd of mount(8) (what containerd's overlay mount does).
 */
export function compactLowerdir(options: readonly string[]): { options: string[]; cwd?: string } {
  const data = options.join(",");
  const index = options.findIndex((o) => o.startsWith("lowerdir="));
  if (data.length < MAX_MOUNT_DATA - 512 || index < 0) return { options: [...options] };
  const dirs = options[index]!.slice("lowerdir=".length).split(":");
  if (dirs.length < 2 || !dirs.every((d) => d.startsWith(sep))) return { options: [...options] };
  let common = dirs[0]!.split(sep).slice(0, -1);
  for (const d of dirs.slice(1)) {
    const parts = d.split(sep);
    let i = 0;
    while (i < common.length && i < parts.length - 1 && common[i] === parts[i]) i++;
    common = common.slice(0, i);
  }
  const cwd = common.join(sep) || sep;
  if (cwd === sep) return { options: [...options] };
  const out = [...options];
  out[index] = `lowerdir=${dirs.map((d) => relative(cwd, d)).join(":")}`;
  return { options: out, cwd };
}

/** Mounts one mount at `target` (a directory that exists). */
export async function mount(m: Mount, target: string): Promise<void> {
  if (m.type === "") throw new InvalidArgumentError("mount type must not be empty");
  const { options, cwd } = m.type === "overlay" ? compactLowerdir(m.options) : { options: [...m.options] };
  const args = ["-t", m.type];
  if (options.length > 0) args.push("-o", options.join(","));
  args.push("--", m.source, target);
  try {
    await run("mount", args, cwd === undefined ? {} : { cwd });
  } catch (err) {
    throw mountError(`mount ${m.type} ${m.source} at ${target}`, err);
  }
}

/**
 * Mounts every mount in order at `target` (each `m.target` is joined under it, as containerd's
 * `mount.All`). When one fails, the ones already mounted are unmounted before the error is thrown.
 */
export async function mountAll(mounts: readonly Mount[], target: string): Promise<void> {
  const done: string[] = [];
  try {
    for (const m of mounts) {
      const dest = m.target ? join(target, m.target) : target;
      await mount(m, dest);
      done.push(dest);
    }
  } catch (err) {
    for (const dest of done.reverse()) await unmount(dest, { detach: true }).catch(() => {});
    throw err;
  }
}

function unescapeMountinfo(path: string): string {
  return path.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(Number.parseInt(oct, 8)));
}

/** The mount points of this process (from /proc/self/mountinfo), in mount order. */
export async function mountPoints(): Promise<string[]> {
  const text = await readFile("/proc/self/mountinfo", "utf8");
  const out: string[] = [];
  for (const line of text.split("\n")) {
    const fields = line.split(" ");
    if (fields.length > 4) out.push(unescapeMountinfo(fields[4]!));
  }
  return out;
}

/** True when something is mounted at `target`. */
export async function isMounted(target: string): Promise<boolean> {
  let path: string;
  try {
    path = await realpath(target);
  } catch {
    return false;
  }
  return (await mountPoints()).includes(path);
}

export interface UnmountOptions {
  /** Lazy unmount (`umount -l`, MNT_DETACH). */
  readonly detach?: boolean;
}

/** Unmounts the top mount at `target` and everything mounted below it. */
export async function unmount(target: string, options: UnmountOptions = {}): Promise<void> {
  const args = ["-R"];
  if (options.detach) args.push("-l");
  args.push("--", target);
  try {
    await run("umount", args);
  } catch (err) {
    throw mountError(`unmount ${target}`, err);
  }
}

/**
 * Unmounts every mount stacked at `target` (containerd's `mount.UnmountAll`); a no-op when nothing is
 * mounted there or `target` does not exist.
 */
export async function unmountAll(target: string, options: UnmountOptions = {}): Promise<void> {
  for (let i = 0; i < 64 && (await isMounted(target)); i++) await unmount(target, options);
  if (await isMounted(target)) throw new FailedPreconditionError(`unmount ${target}: still mounted`);
}

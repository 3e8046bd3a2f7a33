import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { rawSpawn } from "@berth/spawn";

/** The system calls of `native/addon.c` (built by `make -C native`), and @berth/spawn's posix_spawn. */
export interface ShimNative {
  /** prctl(PR_SET_CHILD_SUBREAPER): orphaned descendants (a container's init after runc exits) become ours. */
  setSubreaper(): void;
  /**
   * posix_spawn with exactly `fds[i]` as fd i (0-2: -1 is /dev/null; beyond: -1 leaves it closed); `env` null
   * inherits ours. Returns the pid.
   */
  spawn(file: string, argv: readonly string[], env: readonly string[] | null, fds: readonly number[]): number;
  /** pipe2(O_CLOEXEC): [read end, write end], blocking. */
  pipe(): [number, number];
  /**
   * A cgroup v1 OOM notification: an eventfd registered through `cgroup.event_control` on
   * `<memoryCgroupDir>/memory.oom_control`. The kernel signals it on every OOM and when the cgroup is removed.
   */
  oomEventFd(memoryCgroupDir: string): number;
  /**
   * Watches a readable fd on the event loop (no thread, does not keep the process alive). Each time it is
   * readable 8 bytes (an eventfd counter) are read and `onReadable` gets the count; -1 once the fd is broken,
   * after which the watch stops. The fd belongs to the watch from now on.
   */
  watchFd(fd: number, onReadable: (count: number) => void): FdWatch;
  /** Stops a watch and closes its fd; idempotent. */
  unwatchFd(watch: FdWatch): void;
  /** waitpid(-1, WNOHANG) until nothing is left: flat [pid, status, pid, status, …]; status 128+n for signal n. */
  reap(): number[];
  /** Opens a fifo without blocking ("w" without a reader yet falls back to O_RDWR); the fd is left blocking. */
  openFifo(path: string, mode: "r" | "w" | "rw"): number;
  close(fd: number): void;
  mount(source: string, target: string, fstype: string, flags: number, data: string): void;
  /** umount2; false when nothing was mounted at `target`. */
  umount(target: string, flags: number): boolean;
  /** A listening unix socket (non-blocking) for runc's --console-socket. */
  listenUnix(path: string): number;
  /** The pty master runc sent on the console socket, or -1 when it has not arrived. */
  recvFd(listenFd: number): number;
  setWinsize(fd: number, cols: number, rows: number): void;
}

/** An opaque handle of the addon's fd watch. */
export type FdWatch = { readonly __fdWatch: unique symbol };

let loaded: ShimNative | undefined;

/** Loads the addons once; a missing build is a clear error, not a crash at import time. */
export function shimNative(): ShimNative {
  if (loaded === undefined) {
    const path =
      process.env.BERTH_SHIM_ADDON ?? fileURLToPath(new URL("../native/build/berth_shim.node", import.meta.url));
    const require = createRequire(import.meta.url);
    let addon: Omit<ShimNative, "spawn" | "pipe">;
    try {
      addon = require(path) as Omit<ShimNative, "spawn" | "pipe">;
    } catch (err) {
      throw new Error(
        `berth shim addon not loadable from ${path} (run "make -C packages/shim/native"): ${String(err)}`,
      );
    }
    const spawner = rawSpawn();
    if (spawner === undefined) {
      throw new Error('@berth/spawn\'s addon is not built (run "make -C packages/spawn/native")');
    }
    // The addon's functions are non-enumerable properties: inherit them rather than spread them.
    const native: ShimNative = Object.create(addon);
    native.spawn = (file, argv, env, fds) => spawner.spawn(file, argv, env, null, fds);
    native.pipe = () => spawner.pipe();
    loaded = native;
  }
  return loaded;
}

/** Path of the native `containerd-shim-berth-v2` launcher built next to the addon. */
export const LAUNCHER_PATH = fileURLToPath(new URL("../native/build/containerd-shim-berth-v2", import.meta.url));

export const MNT_DETACH = 2;

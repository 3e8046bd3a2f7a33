import { existsSync, type FSWatcher, readFileSync, watch } from "node:fs";
import { join } from "node:path";
import { type CgroupMode, cgroupDir, hostCgroupMode, processCgroups } from "./cgroups.js";
import type { FdWatch, ShimNative } from "./native.js";

/** Reports OOM kills in containers' cgroups; `onOom` gets the container id. */
export interface OomWatcher {
  /** Starts watching the cgroup `pid` (the container's init) is in. */
  add(id: string, pid: number): void;
  remove(id: string): void;
  close(): void;
}

/** The watcher for the host's cgroup mode, as containerd's shim picks it (v2 only on a unified host). */
export function createOomWatcher(
  native: ShimNative,
  onOom: (id: string) => void,
  mode: CgroupMode = hostCgroupMode(),
): OomWatcher {
  return mode === "unified" ? new CgroupV2OomWatcher(onOom) : new CgroupV1OomWatcher(native, onOom);
}

function warn(id: string, err: unknown): void {
  console.error(`berth shim: cannot watch ${id} for OOM: ${err instanceof Error ? err.message : String(err)}`);
}

/**
 * cgroup v1: an eventfd on the memory cgroup's `memory.oom_control`, polled on the server's event loop (one
 * fd per container, no thread). The kernel also signals it when the cgroup is removed, which ends the watch.
 */
export class CgroupV1OomWatcher implements OomWatcher {
  readonly #native: ShimNative;
  readonly #onOom: (id: string) => void;
  readonly #watches = new Map<string, FdWatch>();

  constructor(native: ShimNative, onOom: (id: string) => void) {
    this.#native = native;
    this.#onOom = onOom;
  }

  add(id: string, pid: number): void {
    const path = processCgroups(pid)?.v1.get("memory");
    if (path === undefined) return; // no memory controller (or the process is already gone)
    const dir = cgroupDir("memory", path);
    this.remove(id);
    try {
      const fd = this.#native.oomEventFd(dir);
      const handle = this.#native.watchFd(fd, (count) => {
        if (count < 0 || !existsSync(dir)) {
          if (this.#watches.get(id) === handle) this.remove(id);
          return;
        }
        this.#onOom(id);
      });
      this.#watches.set(id, handle);
    } catch (err) {
      warn(id, err);
    }
  }

  remove(id: string): void {
    const handle = this.#watches.get(id);
    if (handle === undefined) return;
    this.#watches.delete(id);
    this.#native.unwatchFd(handle);
  }

  close(): void {
    for (const id of [...this.#watches.keys()]) this.remove(id);
  }
}

/** The `oom_kill` count of a cgroup v2 `memory.events` file (0 when absent). */
export function oomKillCount(memoryEvents: string): bigint {
  const m = /^oom_kill (\d+)$/m.exec(memoryEvents);
  return m === null ? 0n : BigInt(m[1] as string);
}

/**
 * cgroup v2: inotify on the cgroup's `memory.events` (fs.watch, on the event loop); an event is reported
 * each time `oom_kill` grows.
 */
export class CgroupV2OomWatcher implements OomWatcher {
  readonly #onOom: (id: string) => void;
  readonly #watches = new Map<string, FSWatcher>();
  readonly #root: string;

  constructor(onOom: (id: string) => void, root?: string) {
    this.#onOom = onOom;
    this.#root = root ?? "/sys/fs/cgroup";
  }

  add(id: string, pid: number): void {
    const path = processCgroups(pid)?.v2;
    if (path === undefined) return;
    this.addDir(id, cgroupDir("", path, this.#root));
  }

  /** Watches a cgroup directory directly (what `add` resolves a pid to). */
  addDir(id: string, dir: string): void {
    this.remove(id);
    const file = join(dir, "memory.events");
    const count = () => {
      try {
        return oomKillCount(readFileSync(file, "utf8"));
      } catch {
        return undefined;
      }
    };
    let last = count();
    if (last === undefined) return; // no memory controller in this cgroup
    try {
      const watcher = watch(file, { persistent: false }, () => {
        const now = count();
        if (now === undefined) {
          if (this.#watches.get(id) === watcher) this.remove(id);
          return;
        }
        if (now > (last as bigint)) this.#onOom(id);
        last = now;
      });
      watcher.on("error", () => {
        if (this.#watches.get(id) === watcher) this.remove(id);
      });
      this.#watches.set(id, watcher);
    } catch (err) {
      warn(id, err);
    }
  }

  remove(id: string): void {
    const watcher = this.#watches.get(id);
    if (watcher === undefined) return;
    this.#watches.delete(id);
    watcher.close();
  }

  close(): void {
    for (const id of [...this.#watches.keys()]) this.remove(id);
  }
}

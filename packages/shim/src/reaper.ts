import type { ShimNative } from "./native.js";

/** How a process ended: exit code, or 128 + signal; and when we saw it. */
export interface ExitRecord {
  readonly status: number;
  readonly at: Date;
}

/** How long an exit of a pid nobody asked about is kept (a container process whose pid we learn later). */
const UNCLAIMED_TTL_MS = 60_000;

/**
 * The server's only reaper. Every child (runc, crun) is spawned through it and every exit is collected by
 * waitpid(-1) on SIGCHLD, so exits of processes re-parented to this subreaper are never lost: an exit of a pid
 * not yet claimed (a container init that died before we read runc's pid file) is kept until it is claimed.
 */
export class Reaper {
  readonly #native: ShimNative;
  readonly #waiting = new Map<number, (exit: ExitRecord) => void>();
  readonly #unclaimed = new Map<number, ExitRecord>();
  readonly #onSignal = () => this.reapNow();

  constructor(native: ShimNative) {
    this.#native = native;
    native.setSubreaper();
    process.on("SIGCHLD", this.#onSignal);
  }

  /** Starts a process; `exited` resolves with its exit. */
  spawn(
    file: string,
    argv: readonly string[],
    fds: readonly number[],
    env: readonly string[] | null = null,
  ): { pid: number; exited: Promise<ExitRecord> } {
    const pid = this.#native.spawn(file, argv, env, fds);
    return { pid, exited: this.watch(pid) };
  }

  /** Resolves when `pid` exits (at once if it already has). */
  watch(pid: number): Promise<ExitRecord> {
    const done = this.#unclaimed.get(pid);
    if (done !== undefined) {
      this.#unclaimed.delete(pid);
      return Promise.resolve(done);
    }
    return new Promise((resolve) => this.#waiting.set(pid, resolve));
  }

  /** Collects every exited child now (also called from SIGCHLD). */
  reapNow(): void {
    const flat = this.#native.reap();
    const now = new Date();
    for (let i = 0; i < flat.length; i += 2) {
      const pid = flat[i] as number;
      const exit: ExitRecord = { status: flat[i + 1] as number, at: now };
      const resolve = this.#waiting.get(pid);
      if (resolve !== undefined) {
        this.#waiting.delete(pid);
        resolve(exit);
      } else {
        this.#unclaimed.set(pid, exit);
      }
    }
    const cutoff = now.getTime() - UNCLAIMED_TTL_MS;
    for (const [pid, exit] of this.#unclaimed) if (exit.at.getTime() < cutoff) this.#unclaimed.delete(pid);
  }

  close(): void {
    process.off("SIGCHLD", this.#onSignal);
  }
}

import { read } from "node:fs";
import { readFileSync, rmdirSync, rmSync, unlinkSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { FailedPreconditionError } from "@berth/errdefs";
import type { ShimNative } from "./native.js";

const readAsync = promisify(read);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// Two of runc's three per-container execs do almost nothing: `runc start` reads one byte from the container's
// exec fifo (which lets the waiting init exec the user's process) and removes the fifo; `runc delete` of a
// stopped container removes its cgroup directories and state directory. Doing those here saves two Go process
// starts per container. Only for runc's state layout and only when the spec has no poststart/poststop hooks
// (which runc runs in those commands); any surprise falls back to the real command.

/** What `runc start` does for a created container; false if the caller should run `runc start` instead. */
export async function startViaExecFifo(
  native: ShimNative,
  stateDir: string,
  initAlive: () => boolean,
  timeoutMs = 10_000,
): Promise<boolean> {
  const fifo = join(stateDir, "exec.fifo");
  let fd: number;
  try {
    fd = native.openFifo(fifo, "r");
  } catch {
    return false;
  }
  try {
    const buf = Buffer.alloc(8);
    const deadline = Date.now() + timeoutMs;
    // Until the init has opened its end, a read sees no writer (0 bytes): poll while it is alive.
    for (;;) {
      const { bytesRead } = await readAsync(fd, buf, 0, buf.length, null);
      if (bytesRead > 0) break;
      if (!initAlive()) throw new FailedPreconditionError("cannot start a container that has stopped", { bare: true });
      if (Date.now() > deadline)
        throw new FailedPreconditionError("container init did not open its exec fifo", { bare: true });
      await sleep(1);
    }
  } finally {
    native.close(fd);
  }
  unlinkSync(fifo);
  return true;
}

/** What `runc delete` does for a stopped container; false if the caller should run `runc delete` instead. */
export function deleteStoppedState(stateDir: string): boolean {
  let state: { cgroup_paths?: Record<string, string> };
  try {
    state = JSON.parse(readFileSync(join(stateDir, "state.json"), "utf8")) as typeof state;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "ENOENT"; // nothing left to delete
  }
  for (const path of new Set(Object.values(state.cgroup_paths ?? {}))) {
    if (!path.startsWith("/sys/fs/cgroup/")) return false;
    try {
      rmdirSync(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") return false;
    }
  }
  rmSync(stateDir, { recursive: true, force: true });
  return true;
}

/** Whether runc's start/delete shortcuts apply to a bundle's spec (no hooks runc would run there). */
export function specAllowsShortcuts(spec: { hooks?: Record<string, unknown[] | undefined> }): boolean {
  const hooks = spec.hooks ?? {};
  return (hooks.poststart?.length ?? 0) === 0 && (hooks.poststop?.length ?? 0) === 0;
}

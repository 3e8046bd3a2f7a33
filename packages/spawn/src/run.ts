import { spawn } from "node:child_process";
import { closeSync, writeSync } from "node:fs";
import { createRequire } from "node:module";
import { Socket } from "node:net";
import { constants } from "node:os";
import { fromNodeError } from "@berth/errdefs";

/** The addon's calls. */
export interface RawSpawn {
  /**
   * posix_spawn with exactly `fds[i]` as fd i (0-2: -1 is /dev/null; beyond: -1 leaves it closed); `env` null
   * inherits ours, `cwd` null keeps ours. Returns the pid; the caller reaps it.
   */
  spawn(
    file: string,
    argv: readonly string[],
    env: readonly string[] | null,
    cwd: string | null,
    fds: readonly number[],
  ): number;
  /** waitpid(pid, WNOHANG): undefined while it runs. */
  wait(pid: number): { code: number; signal: number } | undefined;
  /** pipe2(O_CLOEXEC): [read end, write end], blocking. */
  pipe(): [number, number];
  mkfifo(path: string, mode: number): void;
  /** malloc_trim(0). */
  trimHeap(): boolean;
  /** mallopt(M_MMAP_THRESHOLD) and mallopt(M_TRIM_THRESHOLD): whether glibc took both. */
  setMallocThresholds(mmapBytes: number, trimBytes: number): boolean;
}

type Addon = RawSpawn;

function loadAddon(): Addon | undefined {
  try {
    return createRequire(import.meta.url)("../native/build/berth_spawn.node") as Addon;
  } catch {
    return undefined;
  }
}

const loadedAddon = loadAddon();
/** What `run` and `makeFifo` use; BERTH_NO_NATIVE_SPAWN=1 makes them use node:child_process. */
const addon = process.env.BERTH_NO_NATIVE_SPAWN ? undefined : loadedAddon;

/** Whether children start through posix_spawn (the addon is built); otherwise through node:child_process. */
export const nativeSpawn: boolean = addon !== undefined;

/**
 * The addon itself, for processes that reap their children on their own (Berth's shim is a subreaper and
 * collects every exit with waitpid(-1)); undefined when it is not built.
 */
export function rawSpawn(): RawSpawn | undefined {
  return loadedAddon;
}

export interface RunOptions {
  readonly cwd?: string;
  /** The child's whole environment (default: ours). */
  readonly env?: NodeJS.ProcessEnv;
  /** Written to the child's stdin, which is then closed (default: /dev/null). */
  readonly input?: Uint8Array;
  /** SIGKILL after this long. */
  readonly timeoutMs?: number;
  /** SIGKILL when aborted. */
  readonly signal?: AbortSignal;
}

export interface RunResult {
  /** Exit code, or null when a signal ended the child. */
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: Buffer;
  readonly stderr: Buffer;
}

/**
 * Runs `file` (looked up on PATH when it has no slash) with `args` to completion and collects its output. A
 * child that cannot be started rejects with the errno error (ENOENT, EACCES…). Output a grandchild keeps
 * writing after the child exited is not waited for beyond a short grace period.
 */
export function run(file: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  return addon === undefined ? runWithChildProcess(file, args, options) : runWithAddon(addon, file, args, options);
}

/**
 * Gives freed malloc memory back to the system (glibc's malloc_trim). After a large unpack a daemon keeps
 * ~30 MB of freed-but-mapped heap otherwise (measured in berthd); V8 and Node never trim. It lives in this
 * package because this is the native addon berthd loads anyway. False when nothing was returned or the addon
 * is not built.
 */
export function trimMallocHeap(): boolean {
  return loadedAddon?.trimHeap() ?? false;
}

/** Fixed glibc malloc thresholds, in bytes (mallopt's M_MMAP_THRESHOLD and M_TRIM_THRESHOLD). */
export interface MallocThresholds {
  /** Blocks at least this large get their own mapping, unmapped when freed. */
  readonly mmapBytes: number;
  /** Free memory at the top of an arena beyond this goes back to the system at once. */
  readonly trimBytes: number;
}

/**
 * For long-running servers (berthd, the shim server). glibc's thresholds are dynamic and only grow: each large
 * block freed raises them to its size and twice that, up to 32 and 64 MiB, and from then on every thread's arena
 * keeps up to that much freed memory at its top. A 1 MiB trim threshold took berthd and its shims from 100-106
 * to 83-92 MB Pss with 20 containers just started (the bench's run-berthd after a pull). The mmap threshold
 * stays at glibc's maximum: lower ones (128 KiB, 1 MiB) turned the 1 MiB buffers of an unpack into a mapping
 * and page faults each, and a pull took 1.8x as long.
 */
export const SERVER_MALLOC_THRESHOLDS: MallocThresholds = { mmapBytes: 32 << 20, trimBytes: 1 << 20 };

/**
 * Replaces glibc's dynamic malloc thresholds by fixed ones for the rest of the process's life (all threads).
 * False when glibc refused or the addon is not built; a threshold that is not a positive 32-bit size throws.
 */
export function setMallocThresholds(thresholds: MallocThresholds = SERVER_MALLOC_THRESHOLDS): boolean {
  return loadedAddon?.setMallocThresholds(thresholds.mmapBytes, thresholds.trimBytes) ?? false;
}

/** Creates a fifo (EEXIST and other errno errors as errdefs kinds). */
export async function makeFifo(path: string, mode: number): Promise<void> {
  if (addon !== undefined) {
    try {
      addon.mkfifo(path, mode);
      return;
    } catch (err) {
      throw fromNodeError(err, (err as Error).message);
    }
  }
  const r = await runWithChildProcess("mkfifo", ["-m", mode.toString(8), path], {});
  if (r.code !== 0) {
    const text = r.stderr.toString("utf8").trim();
    const code = Object.entries(MKFIFO_ERRORS).find(([, words]) => text.includes(words))?.[0] ?? "EIO";
    const err = Object.assign(new Error(`mkfifo ${path}: ${text}`), { code });
    throw fromNodeError(err, err.message);
  }
}

// What coreutils' mkfifo prints for the errors a caller tells apart (strerror texts).
const MKFIFO_ERRORS: Record<string, string> = {
  EEXIST: "File exists",
  ENOENT: "No such file or directory",
  EACCES: "Permission denied",
  ENOTDIR: "Not a directory",
};

const signalNames = new Map<number, NodeJS.Signals>(
  Object.entries(constants.signals).map(([name, n]) => [n, name as NodeJS.Signals]),
);

/** How long output may still arrive after the child exited (a grandchild may hold the pipes). */
const OUTPUT_GRACE_MS = 200;
/** Largest input written synchronously (below the pipe's capacity, so the write cannot block). */
const SYNC_INPUT_MAX = 60 * 1024;

function envArray(env: NodeJS.ProcessEnv | undefined): string[] | null {
  if (env === undefined) return null;
  const out: string[] = [];
  for (const [k, v] of Object.entries(env)) if (v !== undefined) out.push(`${k}=${v}`);
  return out;
}

function runWithAddon(native: Addon, file: string, args: readonly string[], options: RunOptions): Promise<RunResult> {
  options.signal?.throwIfAborted();
  const owned: number[] = [];
  const closeOwned = (fd: number) => {
    const i = owned.indexOf(fd);
    if (i >= 0) owned.splice(i, 1);
    closeSync(fd);
  };
  let pid: number;
  let out: [number, number];
  let err: [number, number];
  let input: [number, number] | undefined;
  try {
    out = native.pipe();
    owned.push(...out);
    err = native.pipe();
    owned.push(...err);
    if (options.input !== undefined) {
      input = native.pipe();
      owned.push(...input);
    }
    pid = native.spawn(file, [file, ...args], envArray(options.env), options.cwd ?? null, [
      input?.[0] ?? -1,
      out[1],
      err[1],
    ]);
  } catch (e) {
    for (const fd of owned) closeSync(fd);
    return Promise.reject(fromNodeError(e, (e as Error).message));
  }
  closeOwned(out[1]);
  closeOwned(err[1]);
  if (input !== undefined) closeOwned(input[0]);

  return new Promise<RunResult>((resolve) => {
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    let open = 2;
    let exit: { code: number; signal: number } | undefined;
    let graceTimer: NodeJS.Timeout | undefined;
    let pollTimer: NodeJS.Timeout | undefined;
    let killTimer: NodeJS.Timeout | undefined;
    const streams: Socket[] = [];
    const finish = () => {
      if (exit === undefined || open > 0) return;
      clearTimeout(graceTimer);
      clearTimeout(killTimer);
      options.signal?.removeEventListener("abort", kill);
      resolve({
        code: exit.signal === 0 ? exit.code : null,
        signal: exit.signal === 0 ? null : (signalNames.get(exit.signal) ?? null),
        stdout: Buffer.concat(stdout),
        stderr: Buffer.concat(stderr),
      });
    };
    const collect = (fd: number, into: Buffer[]) => {
      const s = new Socket({ fd, readable: true, writable: false });
      owned.splice(owned.indexOf(fd), 1); // the socket closes it
      streams.push(s);
      s.on("data", (c: Buffer) => into.push(c));
      s.on("error", () => {});
      s.once("close", () => {
        open--;
        finish();
      });
    };
    collect(out[0], stdout);
    collect(err[0], stderr);
    const kill = () => {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // already gone
      }
    };
    if (options.signal) options.signal.addEventListener("abort", kill, { once: true });
    if (options.timeoutMs !== undefined) killTimer = setTimeout(kill, options.timeoutMs);
    if (input !== undefined) writeInput(input[1], options.input!, () => closeOwned(input[1]));

    // The child is not libuv's, so nothing tells us it exited: poll, often at first (most children here are
    // short-lived), then less.
    let delay = 1;
    const poll = () => {
      try {
        exit = native.wait(pid);
      } catch {
        exit = { code: -1, signal: 0 }; // ECHILD: someone else reaped it
      }
      if (exit === undefined) {
        pollTimer = setTimeout(poll, delay);
        delay = Math.min(delay * 2, 25);
        return;
      }
      clearTimeout(pollTimer);
      if (open > 0) {
        graceTimer = setTimeout(() => {
          for (const s of streams) s.destroy();
        }, OUTPUT_GRACE_MS);
      }
      finish();
    };
    pollTimer = setTimeout(poll, 0);
  });
}

function writeInput(fd: number, data: Uint8Array, done: () => void): void {
  if (data.length <= SYNC_INPUT_MAX) {
    try {
      writeSync(fd, data);
    } catch {
      // EPIPE: the child does not read its stdin
    }
    done();
    return;
  }
  const s = new Socket({ fd, readable: false, writable: true });
  s.on("error", () => {});
  s.end(data, () => s.destroy());
  s.once("close", () => {}); // the socket owns the fd now
}

function runWithChildProcess(file: string, args: readonly string[], options: RunOptions): Promise<RunResult> {
  return new Promise<RunResult>((resolve, reject) => {
    const child = spawn(file, args, {
      cwd: options.cwd,
      env: options.env,
      stdio: [options.input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
      ...(options.signal ? { signal: options.signal, killSignal: "SIGKILL" as const } : {}),
      ...(options.timeoutMs !== undefined ? { timeout: options.timeoutMs, killSignal: "SIGKILL" as const } : {}),
    });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    child.stdout?.on("data", (c: Buffer) => stdout.push(c));
    child.stderr?.on("data", (c: Buffer) => stderr.push(c));
    if (child.stdin) {
      child.stdin.on("error", () => {});
      child.stdin.end(options.input);
    }
    let started = false;
    child.once("spawn", () => {
      started = true;
    });
    child.once("error", (e) => {
      if (!started) reject(fromNodeError(e, e.message));
    });
    // As with the addon: once the child has exited, output a grandchild still holds open is not waited for.
    child.once("exit", () => {
      setTimeout(() => {
        child.stdout?.destroy();
        child.stderr?.destroy();
      }, OUTPUT_GRACE_MS).unref();
    });
    child.once("close", (code, signal) => {
      if (!started) return;
      resolve({ code, signal, stdout: Buffer.concat(stdout), stderr: Buffer.concat(stderr) });
    });
  });
}

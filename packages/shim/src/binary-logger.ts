import { Socket } from "node:net";
import { DeadlineExceededError, InvalidArgumentError } from "@berth/errdefs";
import type { ShimNative } from "./native.js";
import type { ExitRecord, Reaper } from "./reaper.js";

/** How long a logger may take to finish after SIGTERM at delete before it is killed (containerd's 12 s). */
export const LOGGER_TERM_TIMEOUT_MS = 12_000;

/**
 * How long a logger may take to report ready. containerd waits forever; a logger that never closes fd 5 would
 * then hold the Create, and with it the shared server, for good.
 */
function readyTimeoutMs(): number {
  const ms = Number(process.env.BERTH_SHIM_LOGGER_READY_TIMEOUT_MS);
  return Number.isFinite(ms) && ms > 0 ? ms : 30_000;
}

/** The logger command of a `binary:///path?key=value&…` URI: each query key then its (first) value, as containerd does. */
export function loggerCommand(uri: string): { path: string; args: string[] } {
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    throw new InvalidArgumentError(`malformed log URI ${JSON.stringify(uri)}`, { bare: true });
  }
  if (url.protocol !== "binary:") throw new InvalidArgumentError(`${uri} is not a binary:// URI`, { bare: true });
  const path = decodeURIComponent(url.pathname);
  if (path === "" || path === "/" || path.includes("\0")) {
    throw new InvalidArgumentError(`log URI ${JSON.stringify(uri)} names no logging binary`, { bare: true });
  }
  const args: string[] = [];
  const seen = new Set<string>();
  for (const [key, value] of url.searchParams) {
    if (seen.has(key)) continue;
    seen.add(key);
    if (key.includes("\0") || value.includes("\0")) {
      throw new InvalidArgumentError("log URI arguments contain NUL", { bare: true });
    }
    args.push(key, value);
  }
  return { path, args };
}

/**
 * A logging binary (containerd's `binary://` log URI protocol): it runs with CONTAINER_ID and
 * CONTAINER_NAMESPACE as its only environment, reads the process's stdout on fd 3 and stderr on fd 4, and
 * closes fd 5 once it is ready. The process gets the write ends as fds 1 and 2; the shim keeps no copy once
 * the runtime has them, so the logger reads EOF when the process (and whatever inherited its stdio) exits.
 */
export class BinaryLogger {
  readonly pid: number;
  /** Write ends for the process: stdout, stderr (ours until handed to the runtime). */
  readonly stdout: number;
  readonly stderr: number;
  readonly #exited: Promise<ExitRecord>;
  #done = false;

  private constructor(pid: number, exited: Promise<ExitRecord>, stdout: number, stderr: number) {
    this.pid = pid;
    this.#exited = exited;
    this.stdout = stdout;
    this.stderr = stderr;
    void exited.then(() => {
      this.#done = true;
    });
  }

  /** Starts the logger and waits until it has closed (or written to) its ready pipe, or exited. */
  static async start(
    native: ShimNative,
    reaper: Reaper,
    uri: string,
    id: string,
    namespace: string,
  ): Promise<BinaryLogger> {
    const { path, args } = loggerCommand(uri);
    const opened: number[] = [];
    const pipe = () => {
      const fds = native.pipe();
      opened.push(...fds);
      return fds;
    };
    let started: { pid: number; exited: Promise<ExitRecord> };
    let out: [number, number];
    let err: [number, number];
    let ready: [number, number];
    try {
      out = pipe();
      err = pipe();
      ready = pipe();
      started = reaper.spawn(
        path,
        [path, ...args],
        [-1, -1, -1, out[0], err[0], ready[1]],
        [`CONTAINER_ID=${id}`, `CONTAINER_NAMESPACE=${namespace}`],
      );
    } catch (e) {
      for (const fd of opened) native.close(fd);
      throw e;
    }
    // The logger has its copies now: ours of the read ends and of the ready write end would hide its EOFs.
    native.close(out[0]);
    native.close(err[0]);
    native.close(ready[1]);
    const logger = new BinaryLogger(started.pid, started.exited, out[1], err[1]);
    const timeout = readyTimeoutMs();
    if (!(await waitReadable(ready[0], started.exited, timeout))) {
      logger.closeWriteEnds(native);
      signal(logger.pid, "SIGKILL");
      throw new DeadlineExceededError(`logging binary ${path} was not ready within ${timeout} ms`, { bare: true });
    }
    return logger;
  }

  /** Closes the write ends that were not handed on (after a failed create). */
  closeWriteEnds(native: ShimNative): void {
    native.close(this.stdout);
    native.close(this.stderr);
  }

  /** At delete: SIGTERM if it still runs, SIGKILL if it has not exited after `timeoutMs`. */
  async stop(timeoutMs = LOGGER_TERM_TIMEOUT_MS): Promise<void> {
    if (this.#done) return;
    signal(this.pid, "SIGTERM");
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      this.#exited.then(() => false),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(true), timeoutMs);
      }),
    ]);
    clearTimeout(timer);
    if (timedOut && !this.#done) {
      console.error(`berth shim: logger ${this.pid} did not exit ${timeoutMs} ms after SIGTERM; killing it`);
      signal(this.pid, "SIGKILL");
      await this.#exited;
    }
  }
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // already gone
  }
}

/**
 * Resolves true on the first byte, EOF or error of `fd` (a pipe) or when `exited` settles, false after
 * `timeoutMs`; closes `fd`.
 */
function waitReadable(fd: number, exited: Promise<unknown>, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = new Socket({ fd, readable: true, writable: false });
    const done = (ready: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ready);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.once("data", () => done(true));
    socket.once("end", () => done(true));
    socket.once("error", () => done(true));
    void exited.then(() => done(true));
  });
}

import { existsSync, closeSync, openSync, readFileSync, rmSync } from "node:fs";
import { basename, join } from "node:path";
import { FailedPreconditionError, NotFoundError, UnknownError } from "@berth/errdefs";
import { LAUNCHER_PATH } from "./native.js";
import type { Reaper } from "./reaper.js";

/** Where runc keeps container state unless the runtime options say otherwise (containerd's default). */
export const DEFAULT_RUNTIME_ROOT = "/run/containerd/runc";
const UNIFIED_CGROUP = "/sys/fs/cgroup/unified";
let callCount = 0;

export interface RuntimeCallOptions {
  /** The runtime's own stdio (for create/exec without a tty these become the container process's). */
  readonly fds?: readonly number[];
}

/**
 * The OCI runtime command line (runc, or crun with the same flags). Errors come from runc's JSON log and
 * stderr. crun refuses the hybrid cgroup layout, so on a hybrid host it is run through the launcher's
 * `run-without-cgroup2`, which hides the cgroup2 mount in a private mount namespace.
 */
export class OciRuntime {
  readonly binary: string;
  /** --root: <root>/<namespace>. */
  readonly root: string;
  readonly #reaper: Reaper;
  readonly #scratch: string;
  readonly #hideCgroup2: boolean;

  constructor(reaper: Reaper, binary: string, root: string, bundle: string) {
    this.#reaper = reaper;
    this.binary = binary;
    this.root = root;
    this.#scratch = bundle;
    this.#hideCgroup2 = basename(binary) === "crun" && existsSync(UNIFIED_CGROUP);
  }

  async create(
    id: string,
    bundle: string,
    pidFile: string,
    consoleSocket: string | undefined,
    fds: readonly number[],
    noPivot: boolean,
  ) {
    const args = ["create", "--bundle", bundle, "--pid-file", pidFile];
    if (consoleSocket !== undefined) args.push("--console-socket", consoleSocket);
    if (noPivot) args.push("--no-pivot");
    args.push(id);
    await this.#run(args, { fds });
  }

  async start(id: string): Promise<void> {
    await this.#run(["start", id]);
  }

  async exec(
    id: string,
    processFile: string,
    pidFile: string,
    consoleSocket: string | undefined,
    fds: readonly number[],
  ) {
    const args = ["exec", "--detach", "--process", processFile, "--pid-file", pidFile];
    if (consoleSocket !== undefined) args.push("--console-socket", consoleSocket);
    args.push(id);
    await this.#run(args, { fds });
  }

  async kill(id: string, signal: number, all: boolean): Promise<void> {
    await this.#run(all ? ["kill", "--all", id, String(signal)] : ["kill", id, String(signal)]);
  }

  async delete(id: string, force: boolean): Promise<void> {
    await this.#run(force ? ["delete", "--force", id] : ["delete", id]);
  }

  async pause(id: string): Promise<void> {
    await this.#run(["pause", id]);
  }

  async resume(id: string): Promise<void> {
    await this.#run(["resume", id]);
  }

  async update(id: string, resourcesFile: string): Promise<void> {
    await this.#run(["update", "--resources", resourcesFile, id]);
  }

  /** Pids of every process in the container (`ps --format json`). */
  async ps(id: string): Promise<number[]> {
    const out = join(this.#scratch, ".ps.json");
    const fd = openSync(out, "w", 0o600);
    try {
      await this.#run(["ps", "--format", "json", id], { fds: [-1, fd, -1] });
    } finally {
      closeSync(fd);
    }
    const text = readFileSync(out, "utf8");
    rmSync(out, { force: true });
    const pids = JSON.parse(text.trim() === "" ? "[]" : text) as unknown;
    return Array.isArray(pids) ? pids.filter((p): p is number => typeof p === "number") : [];
  }

  async #run(args: readonly string[], options: RuntimeCallOptions = {}): Promise<void> {
    const tag = `${process.pid}-${++callCount}`;
    const logPath = join(this.#scratch, `.runtime-${tag}.log`);
    const errPath = join(this.#scratch, `.runtime-${tag}.err`);
    const full = ["--root", this.root, "--log", logPath, "--log-format", "json", ...args];
    const fds = [...(options.fds ?? [-1, -1, -1])];
    let errFd = -1;
    if ((fds[2] ?? -1) < 0) {
      errFd = openSync(errPath, "w", 0o600);
      fds[2] = errFd;
    }
    const { exited } = this.#hideCgroup2
      ? this.#reaper.spawn(
          LAUNCHER_PATH,
          ["containerd-shim-berth-v2", "run-without-cgroup2", this.binary, ...full],
          fds,
        )
      : this.#reaper.spawn(this.binary, [this.binary, ...full], fds);
    if (errFd >= 0) closeSync(errFd);
    const exit = await exited;
    let stderr = "";
    if (errFd >= 0) {
      stderr = readFileSync(errPath, "utf8").trim();
      rmSync(errPath, { force: true });
    }
    const logged = exit.status !== 0 ? lastLogError(logPath) : undefined;
    rmSync(logPath, { force: true });
    if (exit.status !== 0) throw runtimeError(args[0] ?? "", this.binary, logged ?? stderr, exit.status);
  }
}

/** The message of the last "error" entry runc wrote to its JSON log. */
function lastLogError(path: string): string | undefined {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
  const lines = text.trim().split("\n");
  for (let i = lines.length - 1; i >= 0; i--) {
    try {
      const entry = JSON.parse(lines[i] as string) as { level?: string; msg?: string };
      if (entry.level === "error" && entry.msg) return entry.msg;
    } catch {
      // a partial line
    }
  }
  return undefined;
}

function runtimeError(command: string, binary: string, message: string, status: number): Error {
  const prefix = `${basename(binary)} ${command} failed`;
  const text = message.startsWith(prefix) ? message : `${prefix}: ${message || `exit status ${status}`}`;
  if (/container does not exist|container not found/i.test(message)) return new NotFoundError(text, { bare: true });
  if (/not running|not paused|is stopped|cannot|already/i.test(message))
    return new FailedPreconditionError(text, { bare: true });
  return new UnknownError(text, { bare: true });
}

/**
 * The e2e harness: private berthd and containerd daemons on temp unix sockets, the real `ctr`, and a Connect
 * client. Every process started here is tracked by PID and ended by `stopAll()` (call it from afterEach), so
 * a failing test leaves nothing behind. Nothing here signals a process it did not start.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { closeSync, existsSync, openSync, readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  Content,
  WriteAction,
  type WriteContentRequestSchema,
  type WriteContentResponse,
} from "@berth/api/services/content/v1";
import { Version } from "@berth/api/services/version/v1";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { type Client, type Interceptor, type Transport, createClient } from "@connectrpc/connect";
import { Http2SessionManager, createGrpcTransport } from "@connectrpc/connect-node";

export const REPO_ROOT = fileURLToPath(new URL("../../", import.meta.url));
export const BERTHD_BIN = join(REPO_ROOT, "apps/daemon/bin/berthd.js");
const BERTHD_DIST = join(REPO_ROOT, "apps/daemon/dist/bin/berthd.js");
export const CTR_BIN = "/usr/bin/ctr";
export const CONTAINERD_BIN = "/usr/bin/containerd";

/** Berth's version as `ctr version` must report it. */
export const BERTH_VERSION: string = (
  JSON.parse(readFileSync(join(REPO_ROOT, "apps/daemon/package.json"), "utf8")) as { version: string }
).version;

/** Why the e2e suite cannot run here, or undefined when it can. */
export function skipReason(): string | undefined {
  if (process.getuid?.() !== 0) return "needs root";
  if (!existsSync(CTR_BIN)) return `${CTR_BIN} is missing`;
  if (!existsSync(BERTHD_DIST)) return "berthd is not built (run pnpm turbo run build)";
  return undefined;
}

/** Why the containerd parity tests cannot run here, or undefined when they can. */
export function containerdSkipReason(): string | undefined {
  const base = skipReason();
  if (base) return base;
  if (!existsSync(CONTAINERD_BIN)) return `${CONTAINERD_BIN} is missing`;
  if (!existsSync("/usr/bin/unshare")) return "unshare is missing";
  return undefined;
}

// ---------------------------------------------------------------------------------------------------------
// processes

interface Tracked {
  readonly kind: "daemon" | "client";
  stop(): Promise<unknown>;
}
const live = new Set<Tracked>();
const tempDirs = new Set<string>();

/** Stops the client processes (e.g. a streaming `ctr events`) still running; daemons keep running. */
export async function stopClients(): Promise<void> {
  const clients = [...live].filter((t) => t.kind === "client");
  for (const c of clients) live.delete(c);
  await Promise.allSettled(clients.map((t) => t.stop()));
}

/** Stops every daemon and helper process started through this module, then removes their temp dirs. */
export async function stopAll(): Promise<void> {
  const all = [...live];
  live.clear();
  await Promise.allSettled(all.map((t) => t.stop()));
  const dirs = [...tempDirs];
  tempDirs.clear();
  await Promise.allSettled(dirs.map((d) => rm(d, { recursive: true, force: true })));
}

export interface ExitStatus {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

function exited(child: ChildProcess): Promise<ExitStatus> {
  if (child.exitCode !== null || child.signalCode !== null) {
    return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  }
  return new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T | "timeout"> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/** SIGTERM, wait up to `graceMs`, then SIGKILL. Only ever signals `child.pid`, a process we spawned. */
async function terminate(child: ChildProcess, graceMs = 10_000): Promise<ExitStatus> {
  const done = exited(child);
  if (child.exitCode !== null || child.signalCode !== null) return done;
  child.kill("SIGTERM");
  if ((await withTimeout(done, graceMs)) === "timeout") child.kill("SIGKILL");
  return done;
}

async function makeTempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  tempDirs.add(dir);
  return dir;
}

// ---------------------------------------------------------------------------------------------------------
// gRPC client

/** A gRPC transport to a unix socket (authority `localhost`, as grpc-go sends for unix targets). */
export function grpcTransport(
  socket: string,
  options: { namespace?: string; interceptors?: Interceptor[]; writeMaxBytes?: number } = {},
): { transport: Transport; close(): void } {
  const baseUrl = "http://localhost";
  const sessionManager = new Http2SessionManager(baseUrl, undefined, { createConnection: () => net.connect(socket) });
  const interceptors: Interceptor[] = [];
  if (options.namespace !== undefined) {
    const ns = options.namespace;
    interceptors.push((next) => (req) => {
      req.header.set("containerd-namespace", ns);
      return next(req);
    });
  }
  interceptors.push(...(options.interceptors ?? []));
  const transport = createGrpcTransport({
    baseUrl,
    sessionManager,
    interceptors,
    writeMaxBytes: options.writeMaxBytes ?? 64 << 20,
    readMaxBytes: 64 << 20,
  });
  return { transport, close: () => sessionManager.abort() };
}

/** Runs `fn` with a fresh client for `service`, closing the connection afterwards. */
export async function withClient<S extends Parameters<typeof createClient>[0], T>(
  socket: string,
  service: S,
  fn: (client: Client<S>) => Promise<T>,
  options?: Parameters<typeof grpcTransport>[1],
): Promise<T> {
  const conn = grpcTransport(socket, options);
  try {
    return await fn(createClient(service, conn.transport));
  } finally {
    conn.close();
  }
}

// ---------------------------------------------------------------------------------------------------------
// berthd

export interface BerthdOptions {
  /** config.toml text, passed with -c. */
  readonly config?: string;
  /** Extra command-line arguments. */
  readonly args?: readonly string[];
  /** How long to wait for the first successful Version call. */
  readonly readyTimeoutMs?: number;
}

/** A daemon's current process and lifecycle (berthd and containerd alike). */
export interface DaemonLifecycle {
  /** PID of the current process (changes on restart). */
  readonly pid: number;
  /** stderr so far of the current process, and earlier ones since start (berthd: pino JSON lines). */
  log(): string;
  /** SIGTERM, wait, SIGKILL after 10 s; resolves with how it exited. */
  stop(): Promise<ExitStatus>;
  /** SIGKILL, no chance to clean up. */
  kill9(): Promise<ExitStatus>;
  /** Stops it (if running) and starts it again on the same root, state and socket. */
  restart(): Promise<void>;
}

export interface Berthd extends DaemonLifecycle {
  readonly dir: string;
  readonly socket: string;
  readonly root: string;
  readonly state: string;
  /** The process itself (for exit observation). */
  readonly process: ChildProcess;
}

/** Waits until a Version call on `socket` succeeds; fails when `child` (named `name`) exits or time is up. */
async function waitReady(
  name: string,
  socket: string,
  child: ChildProcess,
  log: () => string,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`${name} exited (${child.exitCode ?? child.signalCode}) before serving:\n${log()}`);
    }
    if (existsSync(socket)) {
      try {
        await withClient(socket, Version, (c) => c.version({}, { timeoutMs: 1000 }));
        return;
      } catch (err) {
        lastErr = err;
      }
    }
    await sleep(50);
  }
  throw new Error(`${name} did not answer Version within ${timeoutMs} ms (${String(lastErr)}):\n${log()}`);
}

/** What startSupervised adds to a daemon's paths. */
type Supervised = DaemonLifecycle & { readonly process: ChildProcess };

/**
 * Starts a daemon with `spawnDaemon` (stderr piped) and waits until it answers Version on `paths.socket`; the
 * handle (`paths` plus Supervised) is stopped by stopAll. A restart spawns it again the same way.
 */
async function startSupervised<P extends { readonly socket: string }>(
  name: string,
  paths: P,
  spawnDaemon: () => ChildProcess,
  readyTimeoutMs: number,
): Promise<P & Supervised> {
  let logText = "";
  let child!: ChildProcess;
  const launch = async () => {
    child = spawnDaemon();
    child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
      logText += chunk;
    });
    await waitReady(name, paths.socket, child, () => logText, readyTimeoutMs);
  };
  const handle: P & Supervised & Tracked = {
    ...paths,
    kind: "daemon",
    get pid() {
      return child.pid ?? -1;
    },
    get process() {
      return child;
    },
    log: () => logText,
    stop: () => terminate(child),
    async kill9() {
      const done = exited(child);
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      return done;
    },
    async restart() {
      await terminate(child);
      await launch();
    },
  };
  live.add(handle);
  await launch();
  return handle;
}

/** Starts berthd on temp root/state/socket and waits until a Version call succeeds. */
export async function startBerthd(options: BerthdOptions = {}): Promise<Berthd> {
  const dir = await makeTempDir("berth-e2e-");
  const root = join(dir, "root");
  const state = join(dir, "state");
  const socket = join(dir, "berthd.sock");
  const args = [BERTHD_BIN, "--root", root, "--state", state, "-a", socket];
  if (options.config !== undefined) {
    const cfg = join(dir, "config.toml");
    await writeFile(cfg, options.config);
    args.push("-c", cfg);
  }
  args.push(...(options.args ?? []));
  return startSupervised(
    "berthd",
    { dir, socket, root, state },
    () => spawn(process.execPath, args, { stdio: ["ignore", "ignore", "pipe"], env: { ...process.env } }),
    options.readyTimeoutMs ?? 15_000,
  );
}

/** Runs berthd with arguments and no daemon (e.g. `config default`). */
export function berthdCommand(...args: string[]): Promise<CommandResult> {
  return run(process.execPath, [BERTHD_BIN, ...args]);
}

// ---------------------------------------------------------------------------------------------------------
// ctr

export interface CommandResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

function run(file: string, args: readonly string[], timeoutMs = 20_000): Promise<CommandResult> {
  const env = { ...process.env };
  delete env.CONTAINERD_NAMESPACE;
  delete env.CONTAINERD_ADDRESS;
  return new Promise((resolve) => {
    execFile(file, args, { timeout: timeoutMs, env, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === "number" ? err.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

export const BERTH_BIN = join(REPO_ROOT, "packages/cli/bin/berth.js");

/** Runs `berth -a socket ...args` (the operator CLI). */
export function berth(socket: string, ...args: string[]): Promise<CommandResult> {
  return run(process.execPath, [BERTH_BIN, "-a", socket, ...args]);
}

/** Runs `ctr -a socket ...args`. */
export function ctr(socket: string, ...args: string[]): Promise<CommandResult> {
  return run(CTR_BIN, ["-a", socket, ...args]);
}

export interface RunOptions {
  /** A file to give the command as its standard input, as a shell's `< file` does (a seekable fd). */
  readonly stdinFile?: string;
  readonly timeoutMs?: number;
}

/** Runs a command to completion, with stdin from `stdinFile` (or /dev/null); killed by PID after the timeout. */
export function runCommand(file: string, args: readonly string[], options: RunOptions = {}): Promise<CommandResult> {
  const env = { ...process.env };
  delete env.CONTAINERD_NAMESPACE;
  delete env.CONTAINERD_ADDRESS;
  delete env.BERTH_NAMESPACE;
  delete env.BERTH_ADDRESS;
  const fd = options.stdinFile !== undefined ? openSync(options.stdinFile, "r") : undefined;
  let child: ChildProcess;
  try {
    child = spawn(file, args, { stdio: [fd ?? "ignore", "pipe", "pipe"], env });
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
  let stdout = "";
  let stderr = "";
  child.stdout?.setEncoding("utf8").on("data", (c: string) => {
    stdout += c;
  });
  child.stderr?.setEncoding("utf8").on("data", (c: string) => {
    stderr += c;
  });
  const tracked: Tracked = { kind: "client", stop: () => terminate(child, 2000) };
  live.add(tracked);
  const timer = setTimeout(() => {
    stderr += `\n[harness: timed out after ${options.timeoutMs ?? 20_000} ms, killed]`;
    void terminate(child, 2000);
  }, options.timeoutMs ?? 20_000);
  return new Promise((resolve) => {
    const finish = (code: number) => {
      clearTimeout(timer);
      live.delete(tracked);
      resolve({ code, stdout, stderr });
    };
    child.once("error", (err) => {
      stderr += String(err);
      finish(-1);
    });
    child.once("close", (code) => finish(code ?? -1));
  });
}

/** Runs `ctr -a socket ...args` with options (stdin from a file, a longer timeout). */
export function ctrWith(socket: string, args: readonly string[], options: RunOptions = {}): Promise<CommandResult> {
  return runCommand(CTR_BIN, ["-a", socket, ...args], options);
}

/** Runs `node packages/cli/bin/berth.js -a socket ...args` with options (stdin from a file, a longer timeout). */
export function berthWith(socket: string, args: readonly string[], options: RunOptions = {}): Promise<CommandResult> {
  return runCommand(process.execPath, [BERTH_BIN, "-a", socket, ...args], options);
}

export interface HashedOutput {
  readonly code: number;
  /** `sha256:<hex>` of everything the command wrote to stdout. */
  readonly digest: string;
  readonly size: number;
  readonly stderr: string;
}

/** Runs a command and hashes its (binary) stdout, as `cmd | sha256sum` would. */
export function hashStdout(file: string, args: readonly string[], timeoutMs = 60_000): Promise<HashedOutput> {
  const env = { ...process.env };
  delete env.CONTAINERD_NAMESPACE;
  delete env.CONTAINERD_ADDRESS;
  const child = spawn(file, args, { stdio: ["ignore", "pipe", "pipe"], env });
  const hash = createHash("sha256");
  let size = 0;
  let stderr = "";
  child.stdout?.on("data", (c: Buffer) => {
    hash.update(c);
    size += c.length;
  });
  child.stderr?.setEncoding("utf8").on("data", (c: string) => {
    stderr += c;
  });
  const tracked: Tracked = { kind: "client", stop: () => terminate(child, 2000) };
  live.add(tracked);
  const timer = setTimeout(() => void terminate(child, 2000), timeoutMs);
  return new Promise((resolve) => {
    child.once("close", (code) => {
      clearTimeout(timer);
      live.delete(tracked);
      resolve({ code: code ?? -1, digest: `sha256:${hash.digest("hex")}`, size, stderr });
    });
  });
}

/** A long-running process whose standard input the test writes (e.g. `ctr content ingest` fed slowly). */
export interface Feeding extends Streaming {
  readonly stdin: NodeJS.WritableStream;
}

/** Spawns `ctr -a socket ...args` with a pipe on stdin; stopped by `stopAll()`/`stopClients()` if still running. */
export function spawnCtrFed(socket: string, ...args: string[]): Feeding {
  return spawnTracked(CTR_BIN, ["-a", socket, ...args], "pipe") as Feeding;
}

/** Spawns `ctr -a socket ...args` with `file` as its standard input (seekable, as `< file`); tracked like spawnCtr. */
export function spawnCtrFromFile(socket: string, file: string, ...args: string[]): Streaming {
  const fd = openSync(file, "r");
  try {
    return spawnTracked(CTR_BIN, ["-a", socket, ...args], fd);
  } finally {
    closeSync(fd);
  }
}

function spawnTracked(file: string, args: readonly string[], stdin: "pipe" | "ignore" | number): Streaming {
  const env = { ...process.env };
  delete env.CONTAINERD_NAMESPACE;
  delete env.CONTAINERD_ADDRESS;
  const child = spawn(file, args, { stdio: [stdin, "pipe", "pipe"], env });
  // a reader that died leaves EPIPE on our side of the pipe: that is the test's business, not a crash
  child.stdin?.on("error", () => {});
  let out = "";
  let err = "";
  child.stdout?.setEncoding("utf8").on("data", (c: string) => {
    out += c;
  });
  child.stderr?.setEncoding("utf8").on("data", (c: string) => {
    err += c;
  });
  const handle: Feeding & Tracked = {
    kind: "client",
    pid: child.pid ?? -1,
    process: child,
    stdin: child.stdin as NodeJS.WritableStream,
    stdout: () => out,
    stderr: () => err,
    async waitFor(pattern, timeoutMs = 5000) {
      const deadline = Date.now() + timeoutMs;
      while (Date.now() < deadline) {
        const m = pattern.exec(out);
        if (m) return m[0];
        await sleep(25);
      }
      throw new Error(
        `${file} ${args.join(" ")}: no output matching ${pattern} in ${timeoutMs} ms; stdout:\n${out}\nstderr:\n${err}`,
      );
    },
    exited: (timeoutMs) => withTimeout(exited(child), timeoutMs),
    stop: () => terminate(child, 3000),
  };
  live.add(handle);
  return handle;
}

export interface Streaming {
  readonly pid: number;
  readonly process: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves when stdout matches, rejects after `timeoutMs`. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<string>;
  /** Resolves with the exit status, or "timeout". */
  exited(timeoutMs: number): Promise<ExitStatus | "timeout">;
  stop(): Promise<ExitStatus>;
}

/** Spawns a long-running `ctr -a socket ...args` (e.g. `events`); stopped by `stopAll()` if still running. */
export function spawnCtr(socket: string, ...args: string[]): Streaming {
  return spawnTracked(CTR_BIN, ["-a", socket, ...args], "ignore");
}

// ---------------------------------------------------------------------------------------------------------
// real containerd

export interface Containerd extends DaemonLifecycle {
  readonly dir: string;
  readonly socket: string;
  /** containerd's --root (persistent state, e.g. `io.containerd.content.v1.content/`). */
  readonly root: string;
}

/**
 * A private containerd: temp root/state/socket, the CRI plugin disabled, in its own mount namespace with a
 * private tmpfs on /run (so it touches nothing of the host's /run). `unshare` and `sh` exec, so the PID we
 * hold is containerd's.
 */
export async function startContainerd(options: { readyTimeoutMs?: number } = {}): Promise<Containerd> {
  const dir = await makeTempDir("berth-e2e-ctrd-");
  const socket = join(dir, "containerd.sock");
  const root = join(dir, "root");
  const cfg = join(dir, "config.toml");
  await writeFile(
    cfg,
    [
      "version = 2",
      `root = ${JSON.stringify(root)}`,
      `state = ${JSON.stringify(join(dir, "state"))}`,
      'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
      "[grpc]",
      `  address = ${JSON.stringify(socket)}`,
      "[ttrpc]",
      `  address = ${JSON.stringify(`${socket}.ttrpc`)}`,
      "",
    ].join("\n"),
  );
  const script = `mount -t tmpfs tmpfs /run && exec ${CONTAINERD_BIN} --config "$1"`;
  return startSupervised(
    "containerd",
    { dir, socket, root },
    () =>
      spawn("unshare", ["-m", "--propagation", "private", "sh", "-c", script, "sh", cfg], {
        stdio: ["ignore", "ignore", "pipe"],
      }),
    options.readyTimeoutMs ?? 15_000,
  );
}

// ---------------------------------------------------------------------------------------------------------
// misc

/** A TCP port that was free a moment ago on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** Collapses runs of whitespace and trims each line (ctr's tabwriter pads columns). */
export function normalise(text: string): string[] {
  return text
    .split("\n")
    .map((l) => l.trim().replace(/\s+/g, " "))
    .filter((l) => l !== "");
}

export { sleep };

// ---------------------------------------------------------------------------------------------------------
// content, leases and GC helpers

/** A temp dir removed by `stopAll()` (also when the test fails). */
export function tempDir(prefix = "berth-e2e-tmp-"): Promise<string> {
  return makeTempDir(prefix);
}

/** Polls `probe` until it returns a value other than undefined; throws with `what` after `timeoutMs`. */
export async function waitUntil<T>(
  what: string,
  probe: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 10_000,
  intervalMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}

/** `sha256:<hex>` of a buffer. */
export function sha256(data: Uint8Array | string): string {
  return `sha256:${createHash("sha256").update(data).digest("hex")}`;
}

/** Digests listed by `ctr content ls -q` in the default namespace (throws when ctr fails). */
export async function contentDigests(socket: string, namespace = "default"): Promise<string[]> {
  const res = await ctr(socket, "-n", namespace, "content", "ls", "-q");
  if (res.code !== 0) throw new Error(`ctr content ls failed (${res.code}): ${res.stderr}`);
  return res.stdout.split("\n").filter((l) => l !== "");
}

let gcTriggers = 0;

/**
 * Makes the daemon collect garbage the way a user would: a deletion (`ctr leases create` + `ctr leases rm`)
 * schedules a collection in containerd and in berthd.
 */
export async function triggerGc(socket: string, namespace = "default"): Promise<void> {
  // An explicit id: containerd's generated ones are refused now and then (base64url may yield `--`).
  const id = `gc-trigger-${++gcTriggers}`;
  const created = await ctr(socket, "-n", namespace, "leases", "create", "--id", id);
  if (created.code !== 0) throw new Error(`ctr leases create failed: ${created.stderr}`);
  const removed = await ctr(socket, "-n", namespace, "leases", "rm", id);
  if (removed.code !== 0) throw new Error(`ctr leases rm failed: ${removed.stderr}`);
}

/** Polls `ctr content ls -q` until `digest` is no longer listed; returns how long that took. */
export async function waitGone(socket: string, digest: string, namespace = "default", timeoutMs = 10_000) {
  const start = Date.now();
  await waitUntil(
    `${digest} to be garbage collected`,
    async () => ((await contentDigests(socket, namespace)).includes(digest) ? undefined : true),
    timeoutMs,
    50,
  );
  return Date.now() - start;
}

/**
 * The request side of a bidirectional stream, pushed by the test (e.g. Content.Write in lock step):
 * `push` a message, `end` to half-close.
 */
export class RequestQueue<T> implements AsyncIterable<T> {
  readonly #items: T[] = [];
  #waiting: ((r: IteratorResult<T>) => void) | undefined;
  #ended = false;

  push(item: T): void {
    const waiting = this.#waiting;
    this.#waiting = undefined;
    if (waiting) waiting({ value: item, done: false });
    else this.#items.push(item);
  }

  end(): void {
    this.#ended = true;
    const waiting = this.#waiting;
    this.#waiting = undefined;
    waiting?.({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    return {
      next: () => {
        const item = this.#items.shift();
        if (item !== undefined) return Promise.resolve({ value: item, done: false });
        if (this.#ended) return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve) => {
          this.#waiting = resolve;
        });
      },
      return: async () => {
        this.#ended = true;
        return { value: undefined, done: true };
      },
      throw: async (err: unknown) => {
        this.#ended = true;
        throw err;
      },
    };
  }
}

/**
 * One Content.Write stream driven request by request (containerd's remote writer): `call` sends a request and
 * waits for its response; `close` half-closes; `abort` cancels. Headers: namespace and, optionally, a lease.
 */
export class WriteSession {
  readonly #conn: ReturnType<typeof grpcTransport>;
  readonly #requests = new RequestQueue<MessageInitShape<typeof WriteContentRequestSchema>>();
  readonly #abort = new AbortController();
  readonly #responses: AsyncIterator<WriteContentResponse>;

  constructor(socket: string, options: { namespace?: string; lease?: string } = {}) {
    const lease = options.lease;
    const interceptors: Interceptor[] =
      lease === undefined
        ? []
        : [
            (next) => (req) => {
              req.header.set("containerd-lease", lease);
              return next(req);
            },
          ];
    this.#conn = grpcTransport(socket, { namespace: options.namespace ?? "default", interceptors });
    const client = createClient(Content, this.#conn.transport);
    this.#responses = client.write(this.#requests, { signal: this.#abort.signal })[Symbol.asyncIterator]();
  }

  async call(req: MessageInitShape<typeof WriteContentRequestSchema>): Promise<WriteContentResponse> {
    this.#requests.push(req);
    const next = await this.#responses.next();
    if (next.done) throw new Error("write stream ended without a response");
    return next.value;
  }

  /** Half-closes and waits for the end of the stream. */
  async close(): Promise<void> {
    this.#requests.end();
    try {
      while (!(await this.#responses.next()).done) {
        // drain
      }
    } finally {
      this.#conn.close();
    }
  }

  abort(): void {
    this.#requests.end();
    this.#abort.abort();
    this.#conn.close();
  }
}

/** Writes and commits `data` over gRPC (STAT, WRITE, COMMIT with its digest and size); returns the digest. */
export async function grpcIngest(
  socket: string,
  options: { ref: string; data: Uint8Array; namespace?: string; lease?: string; labels?: Record<string, string> },
): Promise<string> {
  const digest = sha256(options.data);
  const session = new WriteSession(socket, options);
  try {
    await session.call({
      action: WriteAction.STAT,
      ref: options.ref,
      total: BigInt(options.data.length),
      expected: digest,
    });
    await session.call({ action: WriteAction.WRITE, offset: 0n, data: options.data });
    await session.call({
      action: WriteAction.COMMIT,
      offset: BigInt(options.data.length),
      total: BigInt(options.data.length),
      expected: digest,
      labels: options.labels ?? {},
    });
    await session.close();
    return digest;
  } catch (err) {
    session.abort();
    throw err;
  }
}

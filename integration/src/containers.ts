/**
 * What the container tests (ctr run on berthd or a private containerd, with the Go shim or Berth's shim) share:
 * Berth's shim on the PATH, a busybox image, ctr bound to one daemon, what `ctr tasks ls` shows, and the checks
 * that nothing (process, mount, fifo) was left behind.
 */
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, expect } from "vitest";
import { writeOciArchive } from "./busybox.js";
import {
  CTR_BIN,
  type CommandResult,
  REPO_ROOT,
  ctr,
  runCommand,
  sleep,
  startBerthd,
  startContainerd,
  stopAll,
  tempDir,
  waitUntil,
} from "./harness.js";

/** Where `pnpm turbo run build --filter @berth/shim` puts containerd-shim-berth-v2. */
export const SHIM_DIR = join(REPO_ROOT, "packages/shim/native/build");
/** The runtime name that selects Berth's shim. */
export const BERTH_RUNTIME = "io.containerd.berth.v2";
/** The runtime name of containerd's Go shim (containerd-shim-runc-v2). */
export const GO_RUNTIME = "io.containerd.runc.v2";

/** Why Berth's shim cannot be used, or undefined when it is built. */
export function berthShimSkipReason(): string | undefined {
  return existsSync(join(SHIM_DIR, "containerd-shim-berth-v2")) ? undefined : "Berth's shim is not built";
}

/**
 * Puts Berth's shim first on the PATH (daemons started afterwards inherit it and find the binary) and sets the
 * given environment (e.g. BERTH_SHIM_LINGER_MS); the returned function restores both.
 */
export function useBerthShimEnv(env: Readonly<Record<string, string>>): () => void {
  const savedPath = process.env.PATH;
  process.env.PATH = `${SHIM_DIR}:${process.env.PATH}`;
  for (const [k, v] of Object.entries(env)) process.env[k] = v;
  return () => {
    process.env.PATH = savedPath;
    for (const k of Object.keys(env)) delete process.env[k];
  };
}

/**
 * Builds a busybox image with every applet linked (echo, sleep, ls …) from the host's busybox-static into
 * `<dir>/busybox.tar`, named `name`; returns the archive's path.
 */
export async function buildBusyboxImage(dir: string, name: string): Promise<string> {
  const archive = join(dir, "busybox.tar");
  const built = await runCommand(process.execPath, [join(REPO_ROOT, "scripts/build-busybox-image.mjs"), archive, name]);
  expect(built.code, built.stderr).toBe(0);
  return archive;
}

/** One daemon a suite runs against, with ctr bound to it and to a namespace. */
export interface CtrDaemon {
  readonly socket: string;
  ctr(args: readonly string[]): Promise<CommandResult>;
}

/** berthd, with ctr in namespace `ns`. */
export async function berthdForCtr(ns: string): Promise<CtrDaemon> {
  const berthd = await startBerthd();
  return {
    socket: berthd.socket,
    ctr: (args) => runCommand(CTR_BIN, ["-a", berthd.socket, "-n", ns, ...args], { timeoutMs: 30_000 }),
  };
}

/** A private containerd 1.6, with ctr in namespace `ns` run in its mount namespace (its fifos live in its /run). */
export async function containerdForCtr(ns: string): Promise<CtrDaemon> {
  const ctrd = await startContainerd();
  return {
    socket: ctrd.socket,
    ctr: (args) =>
      runCommand("nsenter", ["-t", String(ctrd.pid), "-m", CTR_BIN, "-a", ctrd.socket, "-n", ns, ...args], {
        timeoutMs: 30_000,
      }),
  };
}

/**
 * Kills (SIGKILL, all processes) and removes every task, then removes every container, through `ctrIn` (ctr bound
 * to one daemon and namespace): what a failed test left running goes, so shims and shared servers can exit.
 */
export async function removeAllContainers(ctrIn: (args: readonly string[]) => Promise<CommandResult>): Promise<void> {
  const tasks = await ctrIn(["tasks", "ls", "-q"]);
  for (const id of tasks.stdout.split("\n").filter(Boolean)) {
    await ctrIn(["tasks", "kill", "-a", "-s", "SIGKILL", id]);
    await sleep(100);
    await ctrIn(["tasks", "rm", "-f", id]);
  }
  const cs = await ctrIn(["containers", "ls", "-q"]);
  for (const id of cs.stdout.split("\n").filter(Boolean)) await ctrIn(["containers", "rm", id]);
}

/** `ctr -a socket -n ns`, for removeAllContainers on berthd. */
export const ctrOn =
  (socket: string, ns: string) =>
  (args: readonly string[]): Promise<CommandResult> =>
    ctr(socket, "-n", ns, ...args);

/** Task status by id from `ctr -n ns tasks ls`. */
export async function taskStatus(socket: string, ns: string): Promise<Map<string, string>> {
  const ls = await ctr(socket, "-n", ns, "tasks", "ls");
  expect(ls.code, ls.stderr).toBe(0);
  const out = new Map<string, string>();
  for (const line of ls.stdout.trim().split("\n").slice(1)) {
    const [id, , status] = line.trim().split(/\s+/);
    if (id && status) out.set(id, status);
  }
  return out;
}

/** A process's state letter from /proc (R, S, Z …), or "gone". */
export function processState(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.[0] ?? "gone";
  } catch {
    return "gone";
  }
}

/** Mount points under `dir` in this process's mount namespace. */
export const mountsUnder = (dir: string): string[] =>
  readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .map((l) => l.split(" ")[4] ?? "")
    .filter((p) => p.startsWith(dir));

/** ctr's fifos (under /run/containerd/fifo/<set>/) that belong to a container id. */
export function fifosOf(id: string): string[] {
  const root = "/run/containerd/fifo";
  let sets: string[];
  try {
    sets = readdirSync(root);
  } catch {
    return [];
  }
  return sets.flatMap((set) => {
    try {
      return readdirSync(join(root, set))
        .filter((f) => f.startsWith(`${id}-`))
        .map((f) => join(root, set, f));
    } catch {
      return [];
    }
  });
}

/**
 * SIGKILLs the tasks, waits until all are STOPPED and removes them with `ctr tasks rm`: each must report exit
 * code 137.
 */
export async function killAndRemoveTasks(socket: string, ns: string, ids: readonly string[]): Promise<void> {
  for (const id of ids) expect((await ctr(socket, "-n", ns, "tasks", "kill", "-s", "SIGKILL", id)).code).toBe(0);
  await waitUntil("all stopped", async () => {
    const st = await taskStatus(socket, ns);
    return ids.every((id) => st.get(id) === "STOPPED") ? true : undefined;
  });
  for (const id of ids) {
    const rm = await ctr(socket, "-n", ns, "tasks", "rm", id);
    expect(rm.code, rm.stderr).toBe(0);
    expect(rm.stderr).toContain("exit code 137");
  }
}

export interface ShimSuiteOptions {
  /** Starts the daemon (after the environment is set, so it inherits it). */
  readonly start: () => Promise<CtrDaemon>;
  /** The name the busybox OCI image is imported under. */
  readonly image: string;
  /** BERTH_SHIM_LINGER_MS: how long Berth's idle shim server stays. */
  readonly lingerMs: number;
  /** More environment for the daemon and its shims. */
  readonly env?: Readonly<Record<string, string>>;
  /** Prefix of the suite's temp dir. */
  readonly tempPrefix: string;
}

/**
 * For the enclosing describe: Berth's shim on the PATH (with BERTH_SHIM_LINGER_MS and `env`), the daemon `start`
 * makes, and a busybox OCI image imported into it. After the tests what is left running is removed, the shim
 * server gets its linger (+500 ms) to exit, everything is stopped and the environment restored. Read the fields
 * in tests and later hooks.
 */
export function useShimSuite(options: ShimSuiteOptions): { readonly daemon: CtrDaemon; readonly dir: string } {
  let daemon: CtrDaemon | undefined;
  let dir: string | undefined;
  let restoreEnv: (() => void) | undefined;

  beforeAll(async () => {
    restoreEnv = useBerthShimEnv({ BERTH_SHIM_LINGER_MS: String(options.lingerMs), ...options.env });
    daemon = await options.start();
    dir = await tempDir(options.tempPrefix);
    const archive = await writeOciArchive(join(dir, "busybox.tar"), options.image);
    const imp = await daemon.ctr(["images", "import", archive.path]);
    expect(imp.stderr, `ctr failed (${imp.code})`).not.toMatch(/^ctr: /m);
    expect(imp.code, imp.stderr).toBe(0);
  }, 90_000);

  afterAll(async () => {
    if (daemon !== undefined) await removeAllContainers(daemon.ctr);
    await sleep(options.lingerMs + 500);
    await stopAll();
    restoreEnv?.();
  }, 60_000);

  const started = <T>(value: T | undefined, what: string): T => {
    if (value === undefined) throw new Error(`${what} is not ready (did beforeAll fail?)`);
    return value;
  };
  return {
    get daemon() {
      return started(daemon, "the daemon");
    },
    get dir() {
      return started(dir, "the temp dir");
    },
  };
}

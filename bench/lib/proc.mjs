// Process helpers: cleanup on exit/signal, kill-by-PID, bounded child runs, /proc readings.
import { spawn } from "node:child_process";
import { closeSync, openSync, readFileSync, readdirSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";

const cleanups = new Set();
let handlersInstalled = false;

/** Register fn to run on normal teardown or on SIGINT/SIGTERM/SIGHUP. Returns an unregister function. */
export function onCleanup(fn) {
  installSignalHandlers();
  cleanups.add(fn);
  return () => cleanups.delete(fn);
}

let running = Promise.resolve();

/**
 * Run every registered cleanup, newest first; errors are reported, not thrown. Concurrent callers (a signal
 * handler and the main path unwinding) all wait for the same work, so nobody exits while a stop is under way.
 */
export function runCleanups() {
  running = running.then(async () => {
    while (cleanups.size) {
      const fns = [...cleanups].reverse();
      cleanups.clear();
      for (const fn of fns) {
        try {
          await fn();
        } catch (err) {
          process.stderr.write(`bench: cleanup failed: ${err?.stack ?? err}\n`);
        }
      }
    }
  });
  return running;
}

let interrupted;
/** The signal that interrupted the run, if any. */
export function interruptedBy() {
  return interrupted;
}

function installSignalHandlers() {
  if (handlersInstalled) return;
  handlersInstalled = true;
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"]) {
    process.on(sig, () => {
      if (interrupted) return;
      interrupted = sig;
      process.stderr.write(`\nbench: ${sig}, cleaning up...\n`);
      runCleanups().finally(() => process.exit(128 + ({ SIGINT: 2, SIGTERM: 15, SIGHUP: 1 }[sig] ?? 0)));
    });
  }
}

export function isAlive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return err.code === "EPERM";
  }
}

/** Resolves when the ChildProcess has exited (immediately if it already has). */
export function exited(child) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once("exit", () => resolve()));
}

/**
 * Stop a process we started, by PID: SIGTERM, then SIGKILL after graceMs.
 * `child` (a ChildProcess) is used to notice the exit without racing PID reuse.
 */
export async function stopPid(pid, { child, graceMs = 10_000, signal = "SIGTERM" } = {}) {
  const gone = () => (child ? child.exitCode !== null || child.signalCode !== null : !isAlive(pid));
  if (gone()) return "exited";
  try {
    process.kill(pid, signal);
  } catch (err) {
    if (err.code === "ESRCH") return "exited";
    throw err;
  }
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline) {
    if (gone()) return "terminated";
    await sleep(20);
  }
  try {
    process.kill(pid, "SIGKILL");
  } catch {}
  const killDeadline = Date.now() + 5000;
  while (!gone() && Date.now() < killDeadline) await sleep(20);
  return "killed";
}

/**
 * Run a command to completion with a time limit; on timeout it is killed by PID.
 * `stdinFile`: a path opened as the child's standard input (a regular file, as with `< file`), instead of
 * `input`; `discardStdout`: standard output goes to /dev/null (not collected).
 * Resolves { code, signal, stdout, stderr, ms }; never rejects on a non-zero exit. `ms` runs from spawn to exit.
 */
export function run(cmd, args, { timeoutMs = 120_000, env, cwd, input, stdinFile, discardStdout = false } = {}) {
  return new Promise((resolve, reject) => {
    const stdinFd = stdinFile === undefined ? undefined : openSync(stdinFile, "r");
    const t0 = performance.now();
    let child;
    try {
      child = spawn(cmd, args, {
        env,
        cwd,
        stdio: [stdinFd ?? "pipe", discardStdout ? "ignore" : "pipe", "pipe"],
      });
    } finally {
      if (stdinFd !== undefined) closeSync(stdinFd);
    }
    let stdout = "";
    let stderr = "";
    child.stdout?.setEncoding("utf8").on("data", (d) => {
      stdout += d;
    });
    child.stderr.setEncoding("utf8").on("data", (d) => {
      stderr += d;
    });
    if (child.stdin) {
      child.stdin.on("error", () => {});
      child.stdin.end(input ?? "");
    }
    const unregister = onCleanup(() => stopPid(child.pid, { child, graceMs: 2000 }));
    const timer = setTimeout(() => {
      stderr += `\n[bench: timed out after ${timeoutMs} ms, killed]`;
      stopPid(child.pid, { child, graceMs: 2000 });
    }, timeoutMs);
    child.on("error", (err) => {
      clearTimeout(timer);
      unregister();
      reject(new Error(`cannot run ${cmd}: ${err.message}`));
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      unregister();
      resolve({ code, signal, stdout, stderr, ms: performance.now() - t0 });
    });
  });
}

/** Like run(), but rejects unless the command exits 0. */
export async function runOk(cmd, args, opts) {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) {
    const tail = (r.stderr || r.stdout).trim().split("\n").slice(-15).join("\n");
    throw new Error(`${cmd} ${args.join(" ")} exited ${r.code ?? r.signal}:\n${tail}`);
  }
  return r;
}

/** Poll pred() (sync or async) until truthy; returns its value. */
export async function waitFor(pred, { timeoutMs = 30_000, intervalMs = 1, what = "condition", abort } = {}) {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const v = await pred();
    if (v) return v;
    const why = abort?.();
    if (why) throw new Error(`gave up waiting for ${what}: ${why}`);
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}

/** The PID and all its descendants (by a /proc scan of PPids). */
export function processTree(pid) {
  const parent = new Map();
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      // comm may contain spaces or parens: fields after the last ')'
      const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      parent.set(Number(name), Number(rest[1]));
    } catch {}
  }
  const tree = [pid];
  for (let i = 0; i < tree.length; i++) {
    for (const [p, pp] of parent) if (pp === tree[i]) tree.push(p);
  }
  return tree;
}

/** VmRSS and Pss of one process, in kB. */
export function memoryOf(pid) {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const rss = Number(/^VmRSS:\s+(\d+)/m.exec(status)?.[1] ?? Number.NaN);
  let pss = Number.NaN;
  try {
    const rollup = readFileSync(`/proc/${pid}/smaps_rollup`, "utf8");
    pss = Number(/^Pss:\s+(\d+)/m.exec(rollup)?.[1] ?? Number.NaN);
  } catch {}
  return { rssKb: rss, pssKb: pss };
}

/** Command lines of all processes, as [pid, argv[]] (for finding leftovers a daemon of ours started). */
export function listCmdlines() {
  const out = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const argv = readFileSync(`/proc/${name}/cmdline`, "utf8").split("\0").filter(Boolean);
      if (argv.length) out.push([Number(name), argv]);
    } catch {}
  }
  return out;
}

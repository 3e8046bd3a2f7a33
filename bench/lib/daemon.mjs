// Shared start/stop logic for both daemons.
//
// Every daemon runs in its own mount namespace (unshare -m, propagation private) with a private tmpfs on
// /run (containerd 1.6 and its shims hard-code /run/containerd/...) and a tmpfs on its state dir, so nothing
// leaks onto the host's /run and every mount disappears with the namespace. The wrapper shell sets that up,
// prints "ready", then blocks on a line from us before exec'ing the daemon: the launch clock (t0) starts at
// that line, so namespace setup is not counted, and both daemons are timed from the same point (exec).
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { probeVersion } from "./grpc.mjs";
import { listCmdlines, onCleanup, run, stopPid, waitFor } from "./proc.mjs";

const WRAPPER = `set -e
mount -t tmpfs -o mode=0755 berth-bench-run /run
if [ -n "$2" ]; then mount -t tmpfs -o mode=0711 berth-bench-state "$2"; fi
log=$1; shift 2
echo ready
read go
exec "$@" </dev/null >>"$log" 2>&1`;

/**
 * The environment both daemons run with: what a service manager (systemd) gives a daemon, not the interactive
 * shell's. A shell's client settings do not belong to a daemon, and some cost a Node process dearly: this
 * machine's shell sets NODE_EXTRA_CA_CERTS (the whole system CA bundle), which Node 20 parses at every start
 * (~70 ms). BENCH_DAEMON_ENV=inherit keeps the shell's environment instead.
 */
export function serviceEnv() {
  if (process.env.BENCH_DAEMON_ENV === "inherit") return process.env;
  const keep = ["PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR"];
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v !== undefined && (keep.includes(k) || k.startsWith("BERTH_"))) env[k] = v;
  }
  env.PATH ??= "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  return env;
}

/** A fresh private temp dir for one daemon instance. */
export function makeTempDir(prefix) {
  const base = process.env.BENCH_TMPDIR || tmpdir();
  return mkdtempSync(join(base, `berth-bench-${prefix}-`));
}

function isSocket(path) {
  try {
    return statSync(path).isSocket();
  } catch {
    return false;
  }
}

/**
 * Launch argv inside a private mount namespace and wait until `sock` answers Version.Version.
 * Returns a handle: { kind, pid, sock, dir, logFile, timing: { socketMs, firstRpcMs }, exec, stop }.
 * On any failure the process is stopped and `dir` removed before the error propagates.
 */
export async function launchDaemon({ kind, dir, argv, sock, stateDir, logFile, startTimeoutMs = 30_000 }) {
  const child = spawn(
    "unshare",
    ["--mount", "--propagation", "private", "--", "/bin/sh", "-c", WRAPPER, "sh", logFile, stateDir ?? "", ...argv],
    { stdio: ["pipe", "pipe", "pipe"], detached: true, env: serviceEnv() },
  );
  let wrapperErr = "";
  child.stderr.setEncoding("utf8").on("data", (d) => {
    wrapperErr += d;
  });
  child.stdin.on("error", () => {});
  let removed = false;
  const removeDir = () => {
    if (removed) return;
    removed = true;
    if (!process.env.BENCH_KEEP) rmSync(dir, { recursive: true, force: true });
  };
  const stop = async () => {
    unregister();
    await stopPid(child.pid, { child, graceMs: 10_000 });
    killLeftoverShims(sock);
    removeDir();
  };
  const unregister = onCleanup(stop);

  const died = () => {
    if (child.exitCode === null && child.signalCode === null) return undefined;
    return `${kind} exited (${child.exitCode ?? child.signalCode}); see below`;
  };
  try {
    await new Promise((resolve, reject) => {
      let out = "";
      child.stdout.setEncoding("utf8").on("data", (d) => {
        out += d;
        if (out.includes("ready\n")) resolve();
      });
      child.once("error", (err) => reject(new Error(`cannot start unshare: ${err.message}`)));
      child.once("exit", (code, sig) =>
        reject(new Error(`${kind} namespace wrapper exited (${code ?? sig}) before exec: ${wrapperErr.trim()}`)),
      );
    });
    const t0 = performance.now();
    child.stdin.end("go\n");
    await waitFor(() => isSocket(sock), {
      timeoutMs: startTimeoutMs,
      what: `${kind} socket ${sock}`,
      abort: died,
    });
    const tSock = performance.now();
    await waitFor(() => probeVersion(sock), {
      timeoutMs: startTimeoutMs,
      what: `${kind} first Version RPC`,
      abort: died,
    });
    const tRpc = performance.now();
    return {
      kind,
      pid: child.pid,
      child,
      sock,
      dir,
      logFile,
      timing: { socketMs: tSock - t0, firstRpcMs: tRpc - t0 },
      /** Run a command inside the daemon's mount namespace (needed for anything touching /run/containerd). */
      exec: (cmd, args = [], opts = {}) =>
        run("nsenter", ["-t", String(child.pid), "-m", "--", cmd, ...args], {
          ...opts,
          env: { ...process.env, CONTAINERD_ADDRESS: sock, ...opts.env },
        }),
      stop,
    };
  } catch (err) {
    const log = await tailFile(logFile);
    await stop();
    err.message += log ? `\n--- ${kind} log (tail) ---\n${log}` : "";
    throw err;
  }
}

async function tailFile(path, lines = 20) {
  const r = await run("tail", [`-${lines}`, path], { timeoutMs: 5000 }).catch(() => undefined);
  return r?.stdout?.trim() ?? "";
}

/** SIGKILL shims that our daemon started (they carry `-address <our socket>`). */
function killLeftoverShims(sock) {
  for (const [pid, argv] of listCmdlines()) {
    const i = argv.indexOf("-address");
    if (i >= 0 && argv[i + 1] === sock && /shim/.test(argv[0])) {
      process.stderr.write(`bench: killing leftover shim ${pid} (${argv[0]})\n`);
      try {
        process.kill(pid, "SIGKILL");
      } catch {}
    }
  }
}

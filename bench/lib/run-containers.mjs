// What the run scenarios (run-shim, run-berthd) share: the shims they compare, `ctr run` timings, the shim
// processes of a daemon and their memory, and the metric rows both print.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { REPO_ROOT } from "./berthd.mjs";
import { listCmdlines, memoryOf, processTree } from "./proc.mjs";
import { median } from "./stats.mjs";

export const SHIM_DIR = join(REPO_ROOT, "packages/shim/native/build");
export const GO_SHIM = "io.containerd.runc.v2";
export const BERTH_SHIM = "io.containerd.berth.v2";
export const CONCURRENT = 20;
export const SEQUENTIAL = 5;

// The shim binary must be on the PATH of every daemon a run starts (they inherit ours).
if (!process.env.PATH?.split(":").includes(SHIM_DIR)) process.env.PATH = `${SHIM_DIR}:${process.env.PATH}`;

export function assertShimBuilt() {
  if (!existsSync(join(SHIM_DIR, "containerd-shim-berth-v2"))) {
    throw new Error(`${SHIM_DIR}/containerd-shim-berth-v2 is missing: pnpm turbo run build --filter @berth/shim`);
  }
}

let seq = 0;
export const nextId = (prefix) => `${prefix}-${process.pid}-${++seq}`;

export async function ok(d, args) {
  const r = await d.ctr(args);
  if (r.code !== 0) throw new Error(`${d.kind}: ctr ${args.join(" ")} exited ${r.code}: ${r.stderr.trim()}`);
  return r;
}

/**
 * SEQUENTIAL runs of `<cli> run --rm --runtime <runtime> <image> <id> /bin/busybox true`: their median wall time,
 * and the CPU ms per run charged to `cpuMs` (NaN without it). `exec(args)` runs another CLI than ctr and returns
 * its result ({ code, stderr, ms }).
 */
export async function runRm(d, image, runtime, { cpuMs, exec } = {}) {
  const times = [];
  const cpu0 = cpuMs?.();
  for (let i = 0; i < SEQUENTIAL; i++) {
    const args = ["run", "--rm", "--runtime", runtime, image, nextId("rm"), "/bin/busybox", "true"];
    times.push((exec ? await exec(args) : await ok(d, args)).ms);
  }
  const cpu = cpuMs ? (cpuMs() - cpu0) / SEQUENTIAL : Number.NaN;
  return { ms: median(times), cpu };
}

/** Pids of the shim processes serving daemon socket `sock` (Go shims and Berth's shared servers). */
export function shimPids(sock) {
  const pids = [];
  for (const [pid, argv] of listCmdlines()) {
    const i = argv.findIndex((a) => a === "-address" || a === "--address");
    if (i >= 0 && argv[i + 1] === sock && argv.some((a) => /shim/.test(a))) pids.push(pid);
  }
  return pids;
}

/** Summed Pss of the processes, in MB (those gone meanwhile count nothing). */
function pssMbOf(pids) {
  let pss = 0;
  for (const pid of pids) {
    try {
      pss += memoryOf(pid).pssKb;
    } catch {}
  }
  return pss / 1024;
}

/**
 * CONCURRENT `ctr run -d … sleep` at once, then their removal: the start wall time, the Pss of the daemon and
 * its shims and the daemon's RSS with all running, the teardown wall time and the number of shim processes.
 * The containers are removed also when a step fails.
 */
export async function concurrent(d, image, runtime) {
  const ids = Array.from({ length: CONCURRENT }, () => nextId("d"));
  const t0 = performance.now();
  try {
    await Promise.all(
      ids.map((id) => ok(d, ["run", "-d", "--runtime", runtime, image, id, "/bin/busybox", "sleep", "1000"])),
    );
    const startMs = performance.now() - t0;
    const shims = shimPids(d.sock);
    const daemonPids = processTree(d.pid).filter((p) => !shims.includes(p));
    const pssMb = pssMbOf([...new Set([...daemonPids, ...shims])]);
    let daemonRssMb = Number.NaN;
    try {
      daemonRssMb = memoryOf(d.pid).rssKb / 1024;
    } catch {}
    const t1 = performance.now();
    await teardown(d, ids);
    return { startMs, pssMb, daemonRssMb, teardownMs: performance.now() - t1, shims: shims.length };
  } catch (err) {
    await teardown(d, ids).catch(() => {});
    throw err;
  }
}

async function teardown(d, ids) {
  await Promise.all(
    ids.map(async (id) => {
      await d.ctr(["tasks", "kill", "-s", "SIGKILL", id]);
      await d.ctr(["tasks", "rm", "-f", id]);
      await d.ctr(["containers", "rm", id]);
    }),
  );
  const left = (await d.ctr(["containers", "ls", "-q"])).stdout.trim();
  if (left) throw new Error(`${d.kind}: containers left after teardown: ${left.split("\n").join(" ")}`);
}

/**
 * The metric rows both run scenarios print, by key of `concurrent()`'s and `runRm()`'s results. `runRmLabel`
 * names the sequential row, `daemon` who the Pss row counts besides the shims.
 */
export function runMetrics({ runRmLabel, daemon }) {
  return {
    runRm: { key: "run_rm_ms", label: runRmLabel, unit: "ms", better: "lower", target: { max: 0.8 } },
    concurrentStart: {
      key: "run_d_20_ms",
      label: `${CONCURRENT} concurrent \`ctr run -d\``,
      unit: "ms",
      better: "lower",
      target: { max: 0.8 },
    },
    pss: {
      key: "pss_20_mb",
      label: `Pss of ${daemon} + shims, ${CONCURRENT} running`,
      unit: "MB",
      better: "lower",
      target: { max: 1.0 },
    },
    teardown: { key: "teardown_20_ms", label: `${CONCURRENT} concurrent kill + rm`, unit: "ms", better: "lower" },
    shimProcesses: {
      key: "shim_processes",
      label: `shim processes with ${CONCURRENT} running`,
      unit: "",
      better: "lower",
    },
  };
}

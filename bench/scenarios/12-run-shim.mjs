// Berth's shim (containerd-shim-berth-v2: a native launcher plus one shared Node server per daemon and
// namespace) against containerd's Go shim (containerd-shim-runc-v2), both driven by the same real containerd
// 1.6 started for this scenario, so the shim is the only difference. The berth column is Berth's shim, the
// containerd column the Go shim. One sample:
//   - `ctr run --rm busybox /bin/busybox true`, 5 times back to back: median wall time, and the CPU time per
//     run of containerd's cgroup (daemon, shims, runc: all its descendants but the containers);
//   - 20 × `ctr run -d busybox sleep` at once: wall time until all 20 have returned;
//   - Pss (smaps_rollup) of containerd + every shim process serving it, with those 20 running;
//   - 20 × (kill -9, tasks rm, containers rm) at once: wall time.
// With berthd serving tasks, also `ctr run --rm` through berthd with Berth's shim (berth column; the
// containerd column repeats containerd + Go shim); NaN while berthd cannot run containers.
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { startContainerd } from "../lib/containerd.mjs";
import { busyboxArchive } from "../lib/images.mjs";
import { onCleanup } from "../lib/proc.mjs";
import { BERTH_SHIM, GO_SHIM, assertShimBuilt, concurrent, runMetrics, runRm } from "../lib/run-containers.mjs";

let shared; // { d, image } — one containerd for both columns

async function containerd() {
  assertShimBuilt();
  shared ??= (async () => {
    const d = await startContainerd();
    const cgroup = accountingCgroup(d);
    const image = await importBusybox(d);
    return { d, image, cgroup };
  })();
  return shared;
}

const CPUACCT = "/sys/fs/cgroup/cpuacct";

/**
 * Moves containerd into a cpuacct cgroup of its own: every shim, runc and shim server it starts inherits it
 * (containers move to their own cgroups), so the cgroup's CPU time is the daemon + shim + runtime cost, which
 * the machine's load disturbs far less than wall time. Removed at the end, after containerd and the shims.
 */
function accountingCgroup(d) {
  if (!existsSync(join(CPUACCT, "cpuacct.usage"))) return undefined;
  const dir = join(CPUACCT, `berth-bench-run-shim-${process.pid}`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "cgroup.procs"), String(d.pid));
  onCleanup(async () => {
    await d.stop();
    const deadline = Date.now() + 20_000; // Berth's idle server lingers a few seconds, then exits
    while (readFileSync(join(dir, "cgroup.procs"), "utf8").trim() !== "" && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200));
    }
    try {
      rmdirSync(dir);
    } catch (err) {
      process.stderr.write(`bench: run-shim: cannot remove ${dir}: ${err.message}\n`);
    }
  });
  return () => Number(readFileSync(join(dir, "cpuacct.usage"), "utf8")) / 1e6;
}

async function importBusybox(d) {
  const archive = await busyboxArchive();
  const r = await d.ctr(["images", "import", archive.path]);
  if (r.code !== 0) throw new Error(`${d.kind}: ctr images import: ${r.stderr}`);
  return archive.name;
}

let berthdImage; // undefined: not tried; null: berthd cannot run containers

async function viaBerthd(target) {
  if (berthdImage === null) return Number.NaN;
  const d = await target.shared();
  try {
    berthdImage ??= await importBusybox(d);
    return (await runRm(d, berthdImage, BERTH_SHIM)).ms;
  } catch (err) {
    process.stderr.write(`bench: run-shim via berthd skipped: ${err.message.split("\n")[0]}\n`);
    berthdImage = null;
    return Number.NaN;
  }
}

const rows = runMetrics({ runRmLabel: "`ctr run --rm busybox true` (containerd 1.6 + shim)", daemon: "containerd" });

export default {
  name: "run-shim",
  title: "ctr run with Berth's shim (berth) vs containerd's Go shim (containerd), one containerd",
  repeats: 3,
  warmup: 1,
  metrics: [
    rows.runRm,
    {
      key: "run_rm_cpu_ms",
      label: "CPU (user+sys) of containerd + shim + runc per `ctr run --rm`",
      unit: "ms",
      better: "lower",
    },
    rows.concurrentStart,
    rows.pss,
    rows.teardown,
    rows.shimProcesses,
    {
      key: "run_rm_berthd_ms",
      label: "`ctr run --rm busybox true` via berthd + Berth's shim (containerd: containerd + Go shim)",
      unit: "ms",
      better: "lower",
    },
  ],
  async sample(target) {
    const { d, image, cgroup } = await containerd();
    const runtime = target.kind === "berth" ? BERTH_SHIM : GO_SHIM;
    const run = await runRm(d, image, runtime, { cpuMs: cgroup });
    const c = await concurrent(d, image, runtime);
    const berthd = target.kind === "berth" ? await viaBerthd(target) : run.ms;
    return {
      run_rm_ms: run.ms,
      run_rm_cpu_ms: run.cpu,
      run_d_20_ms: c.startMs,
      pss_20_mb: c.pssMb,
      teardown_20_ms: c.teardownMs,
      shim_processes: c.shims,
      run_rm_berthd_ms: berthd,
    };
  },
};

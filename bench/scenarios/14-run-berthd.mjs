// berthd + Berth's shim (berth column) against containerd 1.6 + its Go shim (containerd column): the whole
// run path, daemon and shim together, each on its own daemon started by the bench. One sample:
//   - `ctr run --rm busybox /bin/busybox true`, 5 times back to back: median wall time;
//   - 20 × `ctr run -d busybox sleep` at once: wall time until all 20 have returned;
//   - Pss (smaps_rollup) of the daemon + every shim process serving it, with those 20 running, and the
//     daemon's own RSS;
//   - 20 × (kill -9, tasks rm, containers rm) at once: wall time.
// Information rows (berth column only; the containerd column repeats containerd + Go shim): berthd with the Go
// shim, and `berth run --rm` (Berth's CLI) through berthd with Berth's shim.
import { join } from "node:path";
import { REPO_ROOT } from "../lib/berthd.mjs";
import { busyboxArchive } from "../lib/images.mjs";
import { onCleanup, waitFor } from "../lib/proc.mjs";
import {
  BERTH_SHIM,
  CONCURRENT,
  GO_SHIM,
  assertShimBuilt,
  concurrent,
  runMetrics,
  runRm,
  shimPids,
} from "../lib/run-containers.mjs";

const BERTH_CLI = join(REPO_ROOT, "packages/cli/bin/berth.js");

const images = new Map(); // daemon kind → Promise<image name>

function prepared(target) {
  assertShimBuilt();
  let p = images.get(target.kind);
  if (p === undefined) {
    p = (async () => {
      const d = await target.shared();
      // Berth's shared shim server lingers a few seconds after its last container: wait for it before the
      // daemon (and its mount namespace) goes, so no server is left behind.
      onCleanup(() =>
        waitFor(() => shimPids(d.sock).length === 0, { timeoutMs: 20_000, intervalMs: 200 }).catch(() => {}),
      );
      const archive = await busyboxArchive();
      const r = await d.ctr(["images", "import", archive.path]);
      if (r.code !== 0) throw new Error(`${d.kind}: ctr images import: ${r.stderr}`);
      return { d, image: archive.name };
    })();
    images.set(target.kind, p);
  }
  return p;
}

/** `berth run --rm` through berthd; NaN (with a note) when Berth's CLI cannot run, e.g. while it is being rebuilt. */
async function berthCli(d, image) {
  try {
    const exec = async (args) => {
      const r = await d.exec(process.execPath, [BERTH_CLI, "-a", d.sock, ...args]);
      if (r.code !== 0) throw new Error(`berth ${args.join(" ")} exited ${r.code}: ${r.stderr.trim()}`);
      return r;
    };
    return (await runRm(d, image, BERTH_SHIM, { exec })).ms;
  } catch (err) {
    process.stderr.write(`bench: run-berthd: berth run skipped: ${err.message.split("\n")[0]}\n`);
    await d.ctr(["containers", "ls", "-q"]).then(async (r) => {
      for (const id of r.stdout.split("\n").filter((x) => x.startsWith("rm-"))) {
        await d.ctr(["tasks", "rm", "-f", id]);
        await d.ctr(["containers", "rm", id]);
      }
    });
    return Number.NaN;
  }
}

const rows = runMetrics({ runRmLabel: "`ctr run --rm busybox true`", daemon: "daemon" });

export default {
  name: "run-berthd",
  title: "ctr run: berthd + Berth's shim (berth) vs containerd 1.6 + Go shim (containerd)",
  repeats: 3,
  warmup: 1,
  metrics: [
    rows.runRm,
    rows.concurrentStart,
    rows.pss,
    { key: "daemon_rss_20_mb", label: `daemon RSS, ${CONCURRENT} running`, unit: "MB", better: "lower" },
    rows.teardown,
    rows.shimProcesses,
    {
      key: "run_rm_go_shim_ms",
      label: "`ctr run --rm` via berthd + Go shim (containerd: containerd + Go shim)",
      unit: "ms",
      better: "lower",
    },
    {
      key: "berth_run_rm_ms",
      label: "`berth run --rm` via berthd + Berth's shim (containerd: ctr on containerd + Go shim)",
      unit: "ms",
      better: "lower",
    },
  ],
  async sample(target) {
    const { d, image } = await prepared(target);
    const berth = target.kind === "berth";
    const runtime = berth ? BERTH_SHIM : GO_SHIM;
    const runMs = (await runRm(d, image, runtime)).ms;
    const c = await concurrent(d, image, runtime);
    return {
      run_rm_ms: runMs,
      run_d_20_ms: c.startMs,
      pss_20_mb: c.pssMb,
      daemon_rss_20_mb: c.daemonRssMb,
      teardown_20_ms: c.teardownMs,
      shim_processes: c.shims,
      run_rm_go_shim_ms: berth ? (await runRm(d, image, GO_SHIM)).ms : runMs,
      berth_run_rm_ms: berth ? await berthCli(d, image) : runMs,
    };
  },
};

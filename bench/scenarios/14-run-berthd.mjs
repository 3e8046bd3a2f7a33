// berthd + Berth's shim (berth column) against containerd 1.6 + its Go shim (containerd column): the whole
// run path, daemon and shim together, each on its own daemon started by the bench. One sample:
//   - `ctr run --rm busybox /bin/busybox true`, 5 times back to back: median wall time;
//   - 20 × `ctr run -d busybox sleep` at once: wall time until all 20 have returned;
//   - Pss (smaps_rollup) of the daemon + every shim process serving it, with those 20 running, and the
//     daemon's own RSS;
//   - 20 × (kill -9, tasks rm, containers rm) at once: wall time.
// Information rows (berth column only; the containerd column repeats containerd + Go shim): berthd with the Go
// shim, and `berth run --rm` (Berth's CLI) through berthd with Berth's shim.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { REPO_ROOT } from "../lib/berthd.mjs";
import { busyboxArchive } from "../lib/images.mjs";
import { listCmdlines, memoryOf, onCleanup, processTree, waitFor } from "../lib/proc.mjs";
import { median } from "../lib/stats.mjs";

const SHIM_DIR = join(REPO_ROOT, "packages/shim/native/build");
const BERTH_CLI = join(REPO_ROOT, "packages/cli/bin/berth.js");
const GO_SHIM = "io.containerd.runc.v2";
const BERTH_SHIM = "io.containerd.berth.v2";
const CONCURRENT = 20;
const SEQUENTIAL = 5;

// The shim binary must be on the PATH of every daemon this run starts (they inherit ours).
if (!process.env.PATH?.split(":").includes(SHIM_DIR)) process.env.PATH = `${SHIM_DIR}:${process.env.PATH}`;

const images = new Map(); // daemon kind → Promise<image name>

function prepared(target) {
  if (!existsSync(join(SHIM_DIR, "containerd-shim-berth-v2"))) {
    throw new Error(`${SHIM_DIR}/containerd-shim-berth-v2 is missing: pnpm turbo run build --filter @berth/shim`);
  }
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

let seq = 0;
const nextId = (prefix) => `${prefix}-${process.pid}-${++seq}`;

async function ok(d, args) {
  const r = await d.ctr(args);
  if (r.code !== 0) throw new Error(`${d.kind}: ctr ${args.join(" ")} exited ${r.code}: ${r.stderr.trim()}`);
  return r;
}

/** Median wall time of SEQUENTIAL `ctr run --rm` (or `berth run --rm` with `cli: "berth"`). */
async function runRm(d, image, runtime, cli = "ctr") {
  const times = [];
  for (let i = 0; i < SEQUENTIAL; i++) {
    const args = ["run", "--rm", "--runtime", runtime, image, nextId("rm"), "/bin/busybox", "true"];
    if (cli === "ctr") {
      times.push((await ok(d, args)).ms);
    } else {
      const r = await d.exec(process.execPath, [BERTH_CLI, "-a", d.sock, ...args]);
      if (r.code !== 0) throw new Error(`berth ${args.join(" ")} exited ${r.code}: ${r.stderr.trim()}`);
      times.push(r.ms);
    }
  }
  return median(times);
}

/** Pids of the shim processes serving daemon socket `sock` (Go shims and Berth's shared servers). */
function shimPids(sock) {
  const pids = [];
  for (const [pid, argv] of listCmdlines()) {
    const i = argv.findIndex((a) => a === "-address" || a === "--address");
    if (i >= 0 && argv[i + 1] === sock && argv.some((a) => /shim/.test(a))) pids.push(pid);
  }
  return pids;
}

function memory(pids) {
  let pss = 0;
  for (const pid of pids) {
    try {
      pss += memoryOf(pid).pssKb;
    } catch {}
  }
  return pss / 1024;
}

async function concurrent(d, image, runtime) {
  const ids = Array.from({ length: CONCURRENT }, () => nextId("d"));
  const t0 = performance.now();
  try {
    await Promise.all(
      ids.map((id) => ok(d, ["run", "-d", "--runtime", runtime, image, id, "/bin/busybox", "sleep", "1000"])),
    );
    const startMs = performance.now() - t0;
    const shims = shimPids(d.sock);
    const daemonPids = processTree(d.pid).filter((p) => !shims.includes(p));
    const pssMb = memory([...new Set([...daemonPids, ...shims])]);
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

/** `berth run --rm` through berthd; NaN (with a note) when Berth's CLI cannot run, e.g. while it is being rebuilt. */
async function berthCli(d, image) {
  try {
    return await runRm(d, image, BERTH_SHIM, "berth");
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

export default {
  name: "run-berthd",
  title: "ctr run: berthd + Berth's shim (berth) vs containerd 1.6 + Go shim (containerd)",
  repeats: 3,
  warmup: 1,
  metrics: [
    {
      key: "run_rm_ms",
      label: "`ctr run --rm busybox true`",
      unit: "ms",
      better: "lower",
      target: { max: 0.8 },
    },
    {
      key: "run_d_20_ms",
      label: `${CONCURRENT} concurrent \`ctr run -d\``,
      unit: "ms",
      better: "lower",
      target: { max: 0.8 },
    },
    {
      key: "pss_20_mb",
      label: `Pss of daemon + shims, ${CONCURRENT} running`,
      unit: "MB",
      better: "lower",
      target: { max: 1.0 },
    },
    { key: "daemon_rss_20_mb", label: `daemon RSS, ${CONCURRENT} running`, unit: "MB", better: "lower" },
    { key: "teardown_20_ms", label: `${CONCURRENT} concurrent kill + rm`, unit: "ms", better: "lower" },
    { key: "shim_processes", label: `shim processes with ${CONCURRENT} running`, unit: "", better: "lower" },
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
    const runMs = await runRm(d, image, runtime);
    const c = await concurrent(d, image, runtime);
    return {
      run_rm_ms: runMs,
      run_d_20_ms: c.startMs,
      pss_20_mb: c.pssMb,
      daemon_rss_20_mb: c.daemonRssMb,
      teardown_20_ms: c.teardownMs,
      shim_processes: c.shims,
      run_rm_go_shim_ms: berth ? await runRm(d, image, GO_SHIM) : runMs,
      berth_run_rm_ms: berth ? await berthCli(d, image) : runMs,
    };
  },
};

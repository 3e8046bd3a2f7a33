#!/usr/bin/env node
// Berth vs containerd, side by side in one run.
//
//   node bench/run.mjs [--scenarios a,b] [--repeats N] [--warmup N] [--daemons berth,containerd]
//                      [--client go|node] [--out DIR] [--strict] [--list]
//
// Starts berthd and a private real containerd (each in its own mount namespace with a private /run),
// runs each scenario's warm-up and timed samples alternating between the daemons, and prints medians and
// berth/containerd ratios against the targets. Results also go to bench/results/<timestamp>.json.
import { execFileSync } from "node:child_process";
import { mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { loadavg, release } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { assertBerthdBuilt, BerthdMissingError, REPO_ROOT, startBerthd } from "./lib/berthd.mjs";
import { containerdVersion, startContainerd } from "./lib/containerd.mjs";
import { interruptedBy, runCleanups } from "./lib/proc.mjs";
import { chooseClient } from "./lib/rpcbench.mjs";
import { fmt, median, minMax } from "./lib/stats.mjs";

class UsageError extends Error {}

const BENCH_DIR = dirname(fileURLToPath(import.meta.url));
const ALL_DAEMONS = ["berth", "containerd"];

const USAGE = `usage: node bench/run.mjs [options]
  --scenarios a,b     scenarios to run (default: all; see --list)
  --repeats N         timed samples per daemon, for every scenario (default: each scenario's own)
  --warmup N          discarded samples per daemon before timing (default: each scenario's own)
  --daemons LIST      berth,containerd (default both); one alone prints no ratios
  --client go|node    RPC load client (default: Go, built into bench/.bin/ on first use; node:http2 fallback)
  --out DIR           where to write <timestamp>.json (default bench/results)
  --log-level LEVEL   log level for both daemons
  --strict            exit 1 if any target fails
  --list              list scenarios and exit
environment: BENCH_TMPDIR (temp dirs), BENCH_KEEP=1 (keep them), BENCH_BERTHD_ARGS, BENCH_CONTAINERD`;

async function loadScenarios() {
  const dir = join(BENCH_DIR, "scenarios");
  const files = readdirSync(dir)
    .filter((f) => f.endsWith(".mjs"))
    .sort();
  const out = [];
  for (const f of files) {
    const mod = await import(pathToFileURL(join(dir, f)).href);
    const s = mod.default;
    if (!s?.name || typeof s.sample !== "function")
      throw new Error(`scenarios/${f}: default export needs name and sample()`);
    out.push(s);
  }
  return out;
}

// A target is a bound on the berth/containerd ratio ({ max } or { min }), and/or an absolute bound on berth's
// own median ({ berth: { min } } or { berth: { max } }, in the metric's unit).
function targetText(t, unit) {
  if (!t) return "";
  const parts = [];
  if (t.max !== undefined) parts.push(`≤ ${t.max}×`);
  if (t.min !== undefined) parts.push(`≥ ${t.min}×`);
  if (t.berth?.min !== undefined) parts.push(`berth ≥ ${t.berth.min} ${unit}`);
  if (t.berth?.max !== undefined) parts.push(`berth ≤ ${t.berth.max} ${unit}`);
  const s = parts.join(", ");
  return t.note ? `${s} (${t.note})` : s;
}

function judge(t, ratio, berth) {
  if (!t) return "";
  const checks = [];
  if ((t.max !== undefined || t.min !== undefined) && Number.isFinite(ratio)) {
    checks.push(t.max !== undefined ? ratio <= t.max : ratio >= t.min);
  }
  if (t.berth && Number.isFinite(berth)) {
    if (t.berth.min !== undefined) checks.push(berth >= t.berth.min);
    if (t.berth.max !== undefined) checks.push(berth <= t.berth.max);
  }
  if (!checks.length) return "";
  return checks.every(Boolean) ? "pass" : "FAIL";
}

function printTable(rows) {
  const head = ["scenario", "metric", "berth", "containerd", "ratio (berth/containerd)", "target", "result"];
  const body = rows.map((r) => [
    r.scenario,
    `${r.label} [${r.unit}]`,
    fmt(r.berth?.median),
    fmt(r.containerd?.median),
    Number.isFinite(r.ratio) ? `${r.ratio.toFixed(2)}×` : "—",
    targetText(r.target, r.unit),
    r.result,
  ]);
  const w = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells) => `| ${cells.map((c, i) => c.padEnd(w[i])).join(" | ")} |`;
  console.log(line(head));
  console.log(`|${w.map((n) => "-".repeat(n + 2)).join("|")}|`);
  for (const b of body) console.log(line(b));
}

function gitCommit() {
  try {
    return execFileSync("git", ["-C", REPO_ROOT, "rev-parse", "--short", "HEAD"], { encoding: "utf8" }).trim();
  } catch {
    return undefined;
  }
}

async function main() {
  const { values: opts } = parseArgs({
    options: {
      scenarios: { type: "string" },
      repeats: { type: "string" },
      warmup: { type: "string" },
      daemons: { type: "string", default: ALL_DAEMONS.join(",") },
      client: { type: "string" },
      out: { type: "string", default: join(BENCH_DIR, "results") },
      "log-level": { type: "string" },
      strict: { type: "boolean", default: false },
      list: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (opts.help) {
    console.log(USAGE);
    return 0;
  }
  let scenarios = await loadScenarios();
  if (opts.list) {
    for (const s of scenarios)
      console.log(`${s.name.padEnd(18)} ${s.title} (repeats ${s.repeats}, warm-up ${s.warmup})`);
    return 0;
  }
  if (opts.scenarios) {
    const want = opts.scenarios.split(",").map((s) => s.trim());
    const unknown = want.filter((w) => !scenarios.some((s) => s.name === w));
    if (unknown.length)
      throw new UsageError(
        `unknown scenario(s): ${unknown.join(", ")}; known: ${scenarios.map((s) => s.name).join(", ")}`,
      );
    scenarios = want.map((w) => scenarios.find((s) => s.name === w));
  }
  const daemons = opts.daemons.split(",").map((s) => s.trim());
  for (const d of daemons)
    if (!ALL_DAEMONS.includes(d)) throw new UsageError(`unknown daemon ${d}; known: ${ALL_DAEMONS}`);
  if (daemons.includes("berth")) assertBerthdBuilt();
  if (opts.client) process.env.BENCH_CLIENT = opts.client;
  const num = (v, name) => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) throw new UsageError(`--${name} wants a non-negative integer, got ${v}`);
    return n;
  };
  const repeatsOverride = num(opts.repeats, "repeats");
  const warmupOverride = num(opts.warmup, "warmup");

  const logLevel = opts["log-level"];
  const starters = {
    berth: () => startBerthd({ logLevel }),
    containerd: () => startContainerd({ logLevel }),
  };
  const shared = {};
  const targets = Object.fromEntries(
    daemons.map((kind) => [
      kind,
      {
        kind,
        start: starters[kind],
        shared: () => {
          shared[kind] ??= starters[kind]();
          return shared[kind];
        },
      },
    ]),
  );

  const client = await chooseClient();
  const startedAt = new Date();
  const env = {
    node: process.version,
    kernel: release(),
    cpus: Number(execFileSync("nproc", { encoding: "utf8" }).trim()),
    loadavg_start: loadavg(),
    containerd: daemons.includes("containerd") ? await containerdVersion() : undefined,
    commit: gitCommit(),
    client: client.note,
  };
  console.error(
    `bench: daemons ${daemons.join(", ")}; client: ${client.note}; load ${loadavg()
      .map((l) => l.toFixed(2))
      .join(" ")}`,
  );

  const results = [];
  const rows = [];
  try {
    for (const s of scenarios) {
      const repeats = repeatsOverride ?? s.repeats ?? 3;
      const warmup = warmupOverride ?? s.warmup ?? 0;
      const samples = Object.fromEntries(daemons.map((d) => [d, []]));
      const t0 = performance.now();
      process.stderr.write(`bench: ${s.name}: ${warmup} warm-up + ${repeats} samples per daemon `);
      for (let i = -warmup; i < repeats; i++) {
        // alternate which daemon goes first, so drift in machine load hits both alike
        const order = (i + warmup) % 2 ? [...daemons].reverse() : daemons;
        for (const kind of order) {
          if (interruptedBy()) throw new Error(`interrupted by ${interruptedBy()}`);
          const sample = await s.sample(targets[kind], {});
          if (i >= 0) samples[kind].push(sample);
          process.stderr.write(i >= 0 ? "." : "w");
        }
      }
      process.stderr.write(` ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
      const metrics = [];
      for (const m of s.metrics) {
        const per = {};
        for (const kind of daemons) {
          const xs = samples[kind].map((x) => x[m.key]);
          const [min, max] = minMax(xs);
          per[kind] = { median: median(xs), min, max, samples: xs };
        }
        const ratio = per.berth && per.containerd ? per.berth.median / per.containerd.median : Number.NaN;
        const result = judge(m.target, ratio, per.berth?.median);
        metrics.push({ ...m, ...per, ratio, result });
        rows.push({ scenario: s.name, ...m, ...per, ratio, result });
      }
      results.push({ name: s.name, title: s.title, repeats, warmup, metrics });
    }
  } finally {
    await runCleanups();
  }

  console.log("");
  printTable(rows);
  const failed = rows.filter((r) => r.result === "FAIL");
  const report = {
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    env: { ...env, loadavg_end: loadavg() },
    daemons,
    scenarios: results,
    summary: { targets: rows.filter((r) => r.result).length, failed: failed.map((r) => `${r.scenario}/${r.key}`) },
  };
  mkdirSync(resolve(opts.out), { recursive: true });
  const file = join(resolve(opts.out), `${startedAt.toISOString().replace(/[:.]/g, "-")}.json`);
  writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
  const load = (l) => l.map((x) => x.toFixed(2)).join(" ");
  console.log(
    `\nload average: start ${load(env.loadavg_start)}, end ${load(report.env.loadavg_end)} (${env.cpus} CPUs)`,
  );
  if (Math.max(env.loadavg_start[0], report.env.loadavg_end[0]) > env.cpus) {
    console.log("warning: the machine was busy with other work; ratios are noisy — rerun when it is quiet");
  }
  console.log(`results: ${file}`);
  return opts.strict && failed.length ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  async (err) => {
    await runCleanups();
    if (interruptedBy()) return; // the signal handler exits once cleanup is done
    if (err instanceof UsageError || err?.code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") {
      console.error(`bench: ${err.message}\n${USAGE}`);
      process.exit(2);
    }
    if (err instanceof BerthdMissingError) {
      console.error(`bench: ${err.message}`);
      process.exit(2);
    }
    console.error(`bench: ${err?.stack ?? err}`);
    process.exit(1);
  },
);

import { InvalidArgumentError } from "@berth/errdefs";
import { definePlugin, pluginType } from "@berth/plugin";
import { MetadataPlugin } from "../metadata.js";
import { GarbageCollector } from "./collector.js";
import { DEFAULT_GC_SCHEDULER_OPTIONS, GcScheduler } from "./scheduler.js";

/** `io.containerd.gc.v1`: the garbage collection scheduler. */
export const GcPlugin = pluginType<GcScheduler>("io.containerd.gc.v1");

export interface GcSchedulerConfig {
  readonly pauseThreshold: number;
  readonly deletionThreshold: number;
  readonly mutationThreshold: number;
  readonly scheduleDelayMs: number;
  readonly startupDelayMs: number;
  readonly intervalMs: number;
}

const DEFAULT_CONFIG: GcSchedulerConfig = {
  pauseThreshold: DEFAULT_GC_SCHEDULER_OPTIONS.pauseThreshold,
  deletionThreshold: DEFAULT_GC_SCHEDULER_OPTIONS.deletionThreshold,
  mutationThreshold: DEFAULT_GC_SCHEDULER_OPTIONS.mutationThreshold,
  scheduleDelayMs: DEFAULT_GC_SCHEDULER_OPTIONS.scheduleDelayMs,
  startupDelayMs: DEFAULT_GC_SCHEDULER_OPTIONS.startupDelayMs,
  intervalMs: DEFAULT_GC_SCHEDULER_OPTIONS.intervalMs,
};

const UNITS: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Parses a Go duration (`100ms`, `1m30s`, `0`) into milliseconds. */
export function parseGoDuration(raw: string): number {
  if (raw === "0") return 0;
  const re = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/y;
  let total = 0;
  let pos = 0;
  while (pos < raw.length) {
    re.lastIndex = pos;
    const m = re.exec(raw);
    if (m === null) throw new InvalidArgumentError(`invalid duration ${JSON.stringify(raw)}`);
    total += Number(m[1]) * (UNITS[m[2] ?? ""] ?? 0);
    pos = re.lastIndex;
  }
  if (raw === "") throw new InvalidArgumentError('invalid duration ""');
  return total;
}

/** Formats milliseconds as a Go duration (`0s`, `100ms`, `1.5s`, `10m0s`), as containerd prints its config. */
export function formatGoDuration(ms: number): string {
  if (ms === 0) return "0s";
  if (ms < 1000) return `${ms}ms`;
  const h = Math.floor(ms / 3_600_000);
  const m = Math.floor((ms % 3_600_000) / 60_000);
  const s = (ms % 60_000) / 1000;
  if (h > 0) return `${h}h${m}m${s}s`;
  if (m > 0) return `${m}m${s}s`;
  return `${s}s`;
}

/** The config under containerd's keys (`interval` is Berth's: the periodic collection for expired leases). */
export function gcSchedulerConfigToToml(c: GcSchedulerConfig): Record<string, unknown> {
  return {
    pause_threshold: c.pauseThreshold,
    deletion_threshold: c.deletionThreshold,
    mutation_threshold: c.mutationThreshold,
    schedule_delay: formatGoDuration(c.scheduleDelayMs),
    startup_delay: formatGoDuration(c.startupDelayMs),
    interval: formatGoDuration(c.intervalMs),
  };
}

/** containerd's `[plugins."io.containerd.gc.v1.scheduler"]` keys. */
export function parseGcSchedulerConfig(raw: unknown): GcSchedulerConfig {
  if (raw === undefined || raw === null) return DEFAULT_CONFIG;
  if (typeof raw !== "object") throw new InvalidArgumentError("gc scheduler config must be a table");
  const t = raw as Record<string, unknown>;
  const num = (key: string, dflt: number): number => {
    const v = t[key];
    if (v === undefined) return dflt;
    if (typeof v !== "number" || !Number.isFinite(v) || v < 0)
      throw new InvalidArgumentError(`${key} must be a number`);
    return v;
  };
  const dur = (key: string, dflt: number): number => {
    const v = t[key];
    if (v === undefined) return dflt;
    if (typeof v === "number") return v;
    if (typeof v !== "string") throw new InvalidArgumentError(`${key} must be a duration`);
    return parseGoDuration(v);
  };
  return {
    pauseThreshold: num("pause_threshold", DEFAULT_CONFIG.pauseThreshold),
    deletionThreshold: num("deletion_threshold", DEFAULT_CONFIG.deletionThreshold),
    mutationThreshold: num("mutation_threshold", DEFAULT_CONFIG.mutationThreshold),
    scheduleDelayMs: dur("schedule_delay", DEFAULT_CONFIG.scheduleDelayMs),
    startupDelayMs: dur("startup_delay", DEFAULT_CONFIG.startupDelayMs),
    intervalMs: dur("interval", DEFAULT_CONFIG.intervalMs),
  };
}

/**
 * `io.containerd.gc.v1.scheduler`: collects after deletions, periodically and on request. Its instance
 * (`GcScheduler`) has `collect()` for sync deletes and `stats()`/`onCollect()` for metrics.
 */
export const gcSchedulerPlugin = definePlugin({
  type: GcPlugin,
  id: "scheduler",
  requires: [MetadataPlugin],
  config: { defaults: DEFAULT_CONFIG, parse: parseGcSchedulerConfig, toToml: gcSchedulerConfigToToml },
  init(ic) {
    const db = ic.getSingle(MetadataPlugin);
    const log = ic.log;
    const scheduler = new GcScheduler(new GarbageCollector(db, { log }), { ...ic.config, log });
    db.onChange((change) => (change === "delete" ? scheduler.markDeleted() : scheduler.markMutated()));
    scheduler.start();
    return scheduler;
  },
});

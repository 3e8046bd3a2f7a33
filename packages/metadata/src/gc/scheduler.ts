import { type Logger, silentLogger } from "@berth/plugin";
import type { GcStats } from "./types.js";

/** What the scheduler runs. */
export interface Collector {
  collect(): Promise<GcStats>;
}

/** containerd's `io.containerd.gc.v1.scheduler` settings (durations in milliseconds). */
export interface GcSchedulerOptions {
  /** Largest share of time the collector may take: runs are at least `lastDuration / pauseThreshold` apart. */
  readonly pauseThreshold?: number;
  /** Deletions after which a collection is scheduled (0: every deletion). */
  readonly deletionThreshold?: number;
  /** Other mutations after which a collection is scheduled. */
  readonly mutationThreshold?: number;
  /** Delay between a trigger and the collection (debounces bursts of deletions). */
  readonly scheduleDelayMs?: number;
  /** Delay of the first collection after start(). */
  readonly startupDelayMs?: number;
  /** Periodic collection (expired ingests and leases need one); 0 disables. */
  readonly intervalMs?: number;
  /** Smallest gap between two scheduled collections. */
  readonly minIntervalMs?: number;
  readonly log?: Logger;
}

export const DEFAULT_GC_SCHEDULER_OPTIONS = {
  pauseThreshold: 0.02,
  deletionThreshold: 0,
  mutationThreshold: 100,
  scheduleDelayMs: 0,
  startupDelayMs: 100,
  intervalMs: 10 * 60_000,
  minIntervalMs: 100,
} as const;

/** Totals since the scheduler started, for a Prometheus metric. */
export interface GcSchedulerStats {
  readonly runs: number;
  readonly failures: number;
  /** Records removed, by node type, over all runs. */
  readonly removed: Readonly<Record<string, number>>;
  readonly blobsDeleted: number;
  readonly ingestsAborted: number;
  /** Sum of run durations, in milliseconds. */
  readonly durationMs: number;
  readonly last?: GcStats;
}

/**
 * Decides when the collector runs: soon after deletions (debounced), after many mutations, periodically, and
 * right away on request (`collect()`, for `sync` deletes). Runs never overlap.
 */
export class GcScheduler {
  readonly #collector: Collector;
  readonly #opts: Required<Omit<GcSchedulerOptions, "log">>;
  readonly #log: Logger;
  readonly #listeners = new Set<(stats: GcStats) => void>();
  #chain: Promise<unknown> = Promise.resolve();
  #timer: NodeJS.Timeout | undefined;
  #interval: NodeJS.Timeout | undefined;
  #deletions = 0;
  #mutations = 0;
  #lastEnd = 0;
  #lastDuration = 0;
  #closed = false;
  #stats: {
    runs: number;
    failures: number;
    removed: Record<string, number>;
    blobsDeleted: number;
    ingestsAborted: number;
    durationMs: number;
    last?: GcStats;
  } = { runs: 0, failures: 0, removed: {}, blobsDeleted: 0, ingestsAborted: 0, durationMs: 0 };

  constructor(collector: Collector, options: GcSchedulerOptions = {}) {
    this.#collector = collector;
    this.#log = options.log ?? silentLogger;
    const { log: _log, ...rest } = options;
    const defined = Object.fromEntries(Object.entries(rest).filter(([, v]) => v !== undefined));
    this.#opts = { ...DEFAULT_GC_SCHEDULER_OPTIONS, ...defined };
  }

  /** Schedules the startup collection and the periodic one. */
  start(): void {
    if (this.#closed) return;
    this.#arm(this.#opts.startupDelayMs);
    if (this.#opts.intervalMs > 0 && this.#interval === undefined) {
      this.#interval = setInterval(() => this.#arm(0), this.#opts.intervalMs);
      this.#interval.unref();
    }
  }

  /** Something was deleted: a collection follows once `deletionThreshold` is passed. */
  markDeleted(): void {
    this.#deletions++;
    if (this.#deletions > this.#opts.deletionThreshold) this.#arm(this.#opts.scheduleDelayMs);
  }

  /** Something changed (labels, new objects): a collection follows after `mutationThreshold` of them. */
  markMutated(): void {
    this.#mutations++;
    if (this.#mutations > this.#opts.mutationThreshold) this.#arm(this.#opts.scheduleDelayMs);
  }

  /** Runs a collection now (after any running one) and returns its stats. */
  collect(): Promise<GcStats> {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    return this.#enqueue();
  }

  /** Calls `listener` after every collection. Returns an unsubscribe function. */
  onCollect(listener: (stats: GcStats) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  stats(): GcSchedulerStats {
    return { ...this.#stats, removed: { ...this.#stats.removed } };
  }

  /** Stops scheduling and waits for a running collection. */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    if (this.#interval !== undefined) clearInterval(this.#interval);
    this.#timer = undefined;
    this.#interval = undefined;
    await this.#chain.catch(() => {});
  }

  #arm(delayMs: number): void {
    if (this.#closed || this.#timer !== undefined) return;
    const gap = Math.max(this.#opts.minIntervalMs, this.#lastDuration / this.#opts.pauseThreshold);
    const earliest = this.#lastEnd === 0 ? 0 : this.#lastEnd + gap - Date.now();
    this.#timer = setTimeout(
      () => {
        this.#timer = undefined;
        this.#enqueue().catch(() => {});
      },
      Math.max(delayMs, earliest, 0),
    );
    this.#timer.unref();
  }

  #enqueue(): Promise<GcStats> {
    const run = this.#chain.then(() => this.#run());
    this.#chain = run.catch(() => {});
    return run;
  }

  async #run(): Promise<GcStats> {
    this.#deletions = 0;
    this.#mutations = 0;
    try {
      const stats = await this.#collector.collect();
      const s = this.#stats;
      s.runs++;
      for (const [type, n] of Object.entries(stats.removed)) s.removed[type] = (s.removed[type] ?? 0) + n;
      s.blobsDeleted += stats.blobsDeleted;
      s.ingestsAborted += stats.ingestsAborted;
      s.durationMs += stats.durationMs;
      s.last = stats;
      // containerd paces on the time the metadata was locked (GCStats.Elapsed = MetaD), not on backend removals
      this.#lastDuration = stats.metaDurationMs;
      for (const listener of this.#listeners) {
        try {
          listener(stats);
        } catch (err) {
          this.#log.warn({ err }, "gc listener failed");
        }
      }
      return stats;
    } catch (err) {
      this.#stats.failures++;
      this.#log.error({ err }, "garbage collection failed");
      throw err;
    } finally {
      this.#lastEnd = Date.now();
    }
  }
}

import type { Logger } from "@berth/plugin";

export interface MemoryTrimmerOptions {
  readonly log: Logger;
  /** How often RSS and CPU time are looked at. */
  readonly intervalMs?: number;
  /** RSS above the lowest seen that makes a look trim; also how far RSS must move to re-arm (half of it). */
  readonly slackBytes?: number;
  /** CPU time (all threads) per wall time above which an interval counts as busy (no trim then). */
  readonly busyFraction?: number;
  /** The RSS and CPU readers and the trim (tests); default: this process and malloc_trim through @berth/spawn. */
  readonly rss?: () => number;
  /** CPU time used so far, in microseconds. */
  readonly cpuMicros?: () => number;
  readonly trim?: () => Promise<void>;
}

const mallocTrim = async (): Promise<void> => {
  (await import("@berth/spawn")).trimMallocHeap();
};

/**
 * Fixes glibc's malloc thresholds (see @berth/spawn's SERVER_MALLOC_THRESHOLDS): without it each thread's
 * arena keeps up to 64 MiB of freed memory between trims, and the trimmer only runs once work has stopped.
 */
export async function fixMallocThresholds(log: Logger): Promise<void> {
  try {
    const spawn = await import("@berth/spawn");
    if (!spawn.setMallocThresholds()) log.debug("malloc thresholds unchanged (no addon, or not glibc)");
  } catch (err) {
    log.debug({ err }, "malloc thresholds unchanged");
  }
}

const processCpuMicros = (): number => {
  const { user, system } = process.cpuUsage();
  return user + system;
};

/**
 * Gives freed malloc memory back to the system after peaks. Measured in berthd: after unpacking the 180 MiB
 * bench image, RSS stayed ~60 MB above its idle size in freed-but-mapped malloc heap (glibc keeps it; V8 and
 * Node never ask for it back) until malloc_trim.
 *
 * When: at the first quiet look after work, once RSS is a slack above the lowest seen. Not during work: pages
 * handed back mid-ingest are faulted in again at once, and on VMs that costs more than the copy itself. Not
 * again after that until something happened that may have freed memory: a busy interval, or RSS moving by half
 * the slack (an apply worker ending drops its isolate's pages but leaves its malloc arena).
 */
export function startMemoryTrimmer(options: MemoryTrimmerOptions): { stop(): void } {
  const slack = options.slackBytes ?? 16 * 1024 * 1024;
  const intervalMs = options.intervalMs ?? 2_000;
  const busyMicros = (options.busyFraction ?? 0.25) * intervalMs * 1000;
  const readRss = options.rss ?? (() => process.memoryUsage.rss());
  const readCpu = options.cpuMicros ?? processCpuMicros;
  const trim = options.trim ?? mallocTrim;
  let floor = readRss();
  let cpu = readCpu();
  /** RSS when last settled (start, or after the last trim); moving away from it re-arms. */
  let settled = floor;
  let armed = true;
  let trimming = false;
  const timer = setInterval(() => {
    const rss = readRss();
    const now = readCpu();
    const busy = now - cpu > busyMicros;
    cpu = now;
    floor = Math.min(floor, rss);
    if (busy || Math.abs(rss - settled) >= slack / 2) armed = true;
    if (busy || !armed || trimming || rss < floor + slack) return;
    trimming = true;
    trim()
      .then(() => {
        const after = readRss();
        floor = Math.min(floor, after);
        settled = after;
        armed = false;
        options.log.debug({ rssBefore: rss, rssAfter: after }, "returned freed memory");
      })
      .catch((err: unknown) => {
        // no addon (or no glibc): nothing to do here for the rest of the process's life
        options.log.debug({ err }, "memory trim unavailable");
        clearInterval(timer);
      })
      .finally(() => {
        trimming = false;
        cpu = readCpu();
      });
  }, intervalMs);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}

import type { Logger } from "@berth/plugin";

export interface MemoryTrimmerOptions {
  readonly log: Logger;
  /** How often RSS is looked at. */
  readonly intervalMs?: number;
  /** RSS above the lowest seen that makes a look trim. */
  readonly slackBytes?: number;
  /** The RSS reader and the trim (tests); default: this process and malloc_trim through @berth/spawn. */
  readonly rss?: () => number;
  readonly trim?: () => Promise<void>;
}

const mallocTrim = async (): Promise<void> => {
  (await import("@berth/spawn")).trimMallocHeap();
};

/** Looks skipped at most after trims that gave little back (then 32 × the interval apart). */
const MAX_BACKOFF = 32;

/**
 * Gives freed malloc memory back to the system after peaks. Measured in berthd: after unpacking the 180 MiB
 * bench image, RSS stayed ~60 MB above its idle size in freed-but-mapped malloc heap (glibc keeps it; V8 and
 * Node never ask for it back) until malloc_trim. A look costs one read of the RSS; the addon loads on the first
 * trim, not at start-up. The floor is the lowest RSS seen, so a trim during a peak does not raise it; trims
 * that give little back (the memory is in use) space the next ones out.
 */
export function startMemoryTrimmer(options: MemoryTrimmerOptions): { stop(): void } {
  const slack = options.slackBytes ?? 16 * 1024 * 1024;
  const readRss = options.rss ?? (() => process.memoryUsage.rss());
  const trim = options.trim ?? mallocTrim;
  let floor = readRss();
  let busy = false;
  let backoff = 1;
  let skip = 0;
  const timer = setInterval(() => {
    const rss = readRss();
    floor = Math.min(floor, rss);
    if (busy || rss < floor + slack) {
      backoff = 1;
      skip = 0;
      return;
    }
    if (skip > 0) {
      skip--;
      return;
    }
    busy = true;
    trim()
      .then(() => {
        const after = readRss();
        floor = Math.min(floor, after);
        options.log.debug({ rssBefore: rss, rssAfter: after }, "returned freed memory");
        if (rss - after < slack / 4) {
          skip = backoff;
          backoff = Math.min(backoff * 2, MAX_BACKOFF);
        } else {
          backoff = 1;
        }
      })
      .catch((err: unknown) => options.log.debug({ err }, "memory trim unavailable"))
      .finally(() => {
        busy = false;
      });
  }, options.intervalMs ?? 10_000);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}

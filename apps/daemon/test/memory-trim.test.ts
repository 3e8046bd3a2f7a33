import { silentLogger } from "@berth/plugin";
import { describe, expect, it } from "vitest";
import { startMemoryTrimmer } from "../src/memory-trim.js";

const MB = 1024 * 1024;
const INTERVAL_MS = 5;
/** Enough time for several looks. */
const looks = (n = 4) => new Promise((resolve) => setTimeout(resolve, INTERVAL_MS * n + 10));

/**
 * A fake process: RSS and CPU time set by the test; a trim gives back what the test says is freed. While `busy`,
 * every read of the CPU clock advances it by a full interval (one core fully used).
 */
function fakeProcess(start: number) {
  const state = { rss: start, freed: 0, trims: 0, busy: false, cpu: 0 };
  return {
    state,
    rss: () => state.rss,
    cpuMicros: () => {
      if (state.busy) state.cpu += INTERVAL_MS * 1000;
      return state.cpu;
    },
    trim: async () => {
      state.trims++;
      state.rss -= state.freed;
      state.freed = 0;
    },
  };
}

function start(p: ReturnType<typeof fakeProcess>) {
  return startMemoryTrimmer({
    log: silentLogger,
    intervalMs: INTERVAL_MS,
    slackBytes: 16 * MB,
    rss: p.rss,
    cpuMicros: p.cpuMicros,
    trim: p.trim,
  });
}

describe("memory trimmer", () => {
  it("waits for work to end, then gives freed memory back once", async () => {
    const p = fakeProcess(70 * MB);
    const t = start(p);
    try {
      await looks();
      expect(p.state.trims).toBe(0); // at the floor
      // work with a peak: no trim while it runs, whatever is freed meanwhile
      p.state.busy = true;
      p.state.rss = 160 * MB;
      p.state.freed = 60 * MB;
      await looks(6);
      expect(p.state.trims).toBe(0);
      // quiet: one trim, and none after it while nothing happens
      p.state.busy = false;
      await looks(6);
      expect(p.state.trims).toBe(1);
      expect(p.state.rss).toBe(100 * MB);
    } finally {
      t.stop();
    }
  });

  it("trims again when RSS moves (a worker ended) or after more work, and leaves RSS near the floor alone", async () => {
    const p = fakeProcess(70 * MB);
    const t = start(p);
    try {
      p.state.rss = 183 * MB; // an apply worker idles after an unpack; its memory is in use
      await looks();
      expect(p.state.trims).toBe(1);
      await looks(6);
      expect(p.state.trims).toBe(1); // a trim that gave nothing back is not repeated
      // the worker ends: its isolate's pages go (RSS moves), its malloc arena stays until trimmed
      p.state.rss = 155 * MB;
      p.state.freed = 71 * MB;
      await looks();
      expect(p.state.trims).toBe(2);
      expect(p.state.rss).toBe(84 * MB);
      // more work that ends within the slack of the floor: nothing to trim
      p.state.busy = true;
      await looks();
      p.state.busy = false;
      await looks(6);
      expect(p.state.trims).toBe(2);
    } finally {
      t.stop();
    }
  });

  it("stops looking when trimming is unavailable", async () => {
    const p = fakeProcess(70 * MB);
    let calls = 0;
    const t = startMemoryTrimmer({
      log: silentLogger,
      intervalMs: INTERVAL_MS,
      slackBytes: 16 * MB,
      rss: p.rss,
      cpuMicros: p.cpuMicros,
      trim: async () => {
        calls++;
        throw new Error("no addon");
      },
    });
    try {
      p.state.rss = 200 * MB;
      await looks(10);
      expect(calls).toBe(1);
    } finally {
      t.stop();
    }
  });
});

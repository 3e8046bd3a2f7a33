import { silentLogger } from "@berth/plugin";
import { describe, expect, it } from "vitest";
import { startMemoryTrimmer } from "../src/memory-trim.js";

const MB = 1024 * 1024;
const tick = () => new Promise((resolve) => setTimeout(resolve, 15));

/** A fake process: RSS set by the test; a trim gives back what the test says is freed. */
function fakeProcess(start: number) {
  const state = { rss: start, freed: 0, trims: 0 };
  return {
    state,
    rss: () => state.rss,
    trim: async () => {
      state.trims++;
      state.rss -= state.freed;
      state.freed = 0;
    },
  };
}

describe("memory trimmer", () => {
  it("trims once RSS is a slack above the lowest seen, and the floor does not rise with a peak", async () => {
    const p = fakeProcess(70 * MB);
    const t = startMemoryTrimmer({ log: silentLogger, intervalMs: 5, slackBytes: 16 * MB, rss: p.rss, trim: p.trim });
    try {
      await tick();
      expect(p.state.trims).toBe(0); // at the floor
      // a peak in use: the trim gives little back...
      p.state.rss = 160 * MB;
      p.state.freed = 2 * MB;
      await tick();
      expect(p.state.trims).toBeGreaterThan(0);
      // ...then the work ends and its memory is freed: still above the floor (70), so it is given back
      p.state.freed = 60 * MB;
      await new Promise((resolve) => setTimeout(resolve, 400)); // past the backoff of the weak trims
      expect(p.state.rss).toBe(98 * MB);
      const trims = p.state.trims;
      // within the slack of the floor: no more trims
      p.state.rss = 80 * MB;
      await tick();
      await tick();
      expect(p.state.trims).toBe(trims);
    } finally {
      t.stop();
    }
  });

  it("spaces out trims that give nothing back", async () => {
    const p = fakeProcess(70 * MB);
    const t = startMemoryTrimmer({ log: silentLogger, intervalMs: 2, slackBytes: 16 * MB, rss: p.rss, trim: p.trim });
    try {
      p.state.rss = 200 * MB; // in use, nothing to give back
      await new Promise((resolve) => setTimeout(resolve, 200));
      // ~100 looks; with the doubling backoff (1, 2, 4, … 32 skipped) only a handful trim
      expect(p.state.trims).toBeGreaterThan(1);
      expect(p.state.trims).toBeLessThan(12);
    } finally {
      t.stop();
    }
  });
});

import { describe, expect, test } from "vitest";
import {
  formatGoDuration,
  gcSchedulerConfigToToml,
  gcSchedulerPlugin,
  parseGcSchedulerConfig,
  parseGoDuration,
} from "../src/index.js";

describe("gc scheduler config", () => {
  test("Go durations parse and print as containerd writes them", () => {
    expect(parseGoDuration("0")).toBe(0);
    expect(parseGoDuration("100ms")).toBe(100);
    expect(parseGoDuration("1m30s")).toBe(90_000);
    expect(parseGoDuration("1.5s")).toBe(1500);
    expect(() => parseGoDuration("10 minutes")).toThrow(/invalid duration/);
    expect(() => parseGoDuration("")).toThrow(/invalid duration/);
    for (const ms of [0, 1, 100, 1500, 60_000, 90_000, 600_000, 3_723_000]) {
      expect(parseGoDuration(formatGoDuration(ms))).toBe(ms);
    }
    expect(formatGoDuration(0)).toBe("0s");
    expect(formatGoDuration(100)).toBe("100ms");
    expect(formatGoDuration(600_000)).toBe("10m0s");
  });

  test("the defaults print under containerd's keys and parse back to themselves", () => {
    const spec = gcSchedulerPlugin.config!;
    const table = gcSchedulerConfigToToml(spec.defaults);
    expect(table).toMatchObject({
      pause_threshold: 0.02,
      deletion_threshold: 0,
      mutation_threshold: 100,
      schedule_delay: "0s",
      startup_delay: "100ms",
    });
    expect(parseGcSchedulerConfig(table)).toEqual(spec.defaults);
  });

  test("bad values are InvalidArgument", () => {
    expect(() => parseGcSchedulerConfig({ deletion_threshold: -1 })).toThrow(/deletion_threshold/);
    expect(() => parseGcSchedulerConfig({ schedule_delay: true })).toThrow(/schedule_delay/);
    expect(() => parseGcSchedulerConfig("x")).toThrow(/table/);
  });
});

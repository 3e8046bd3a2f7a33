import { describe, expect, it } from "vitest";
import { parseDuration } from "../src/duration.js";

describe("parseDuration (Go time.ParseDuration)", () => {
  it.each([
    ["10s", 10_000],
    ["500ms", 500],
    ["1m30s", 90_000],
    ["1.5h", 5_400_000],
    ["2h45m", 9_900_000],
    ["0", 0],
    ["+3s", 3000],
    [".5s", 500],
    ["1500us", 1.5],
    ["1500µs", 1.5],
    ["1000000ns", 1],
  ])("%s is %d ms", (input, ms) => {
    expect(parseDuration(input)).toBeCloseTo(ms, 9);
  });

  it.each(["", "10", "s", "1x", "1.s2", "ten seconds", "1s 2s"])("rejects %j", (input) => {
    expect(() => parseDuration(input)).toThrow(/duration/);
  });

  it("rejects negative durations", () => {
    expect(() => parseDuration("-1s")).toThrow(/negative/);
  });
});

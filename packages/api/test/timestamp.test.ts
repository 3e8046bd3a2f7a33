import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { TimestampSchema } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import {
  GO_ZERO_TIMESTAMP_SECONDS,
  dateFromTimestamp,
  goZeroTimestamp,
  isGoZeroTimestamp,
  nowTimestamp,
  timestampFromDate,
} from "../src/index.js";

describe("Go zero timestamps", () => {
  it("is 0001-01-01T00:00:00Z", () => {
    expect(GO_ZERO_TIMESTAMP_SECONDS).toBe(-62135596800n);
    expect(BigInt(Date.parse("0001-01-01T00:00:00Z")) / 1000n).toBe(GO_ZERO_TIMESTAMP_SECONDS);
  });

  it("timestampFromDate(undefined) gives the Go zero time", () => {
    const ts = timestampFromDate();
    expect(ts.seconds).toBe(GO_ZERO_TIMESTAMP_SECONDS);
    expect(ts.nanos).toBe(0);
    expect(isGoZeroTimestamp(ts)).toBe(true);
    expect(isGoZeroTimestamp(goZeroTimestamp())).toBe(true);
  });

  it("the Go zero time is emitted on the wire", () => {
    expect(toBinary(TimestampSchema, goZeroTimestamp()).length).toBeGreaterThan(0);
  });

  it("dateFromTimestamp maps Go zero and missing to undefined", () => {
    expect(dateFromTimestamp(undefined)).toBeUndefined();
    expect(dateFromTimestamp(goZeroTimestamp())).toBeUndefined();
    const wire = fromBinary(TimestampSchema, toBinary(TimestampSchema, goZeroTimestamp()));
    expect(dateFromTimestamp(wire)).toBeUndefined();
  });

  it("round-trips real dates, including the Unix epoch", () => {
    const d = new Date("2024-05-06T07:08:09.123Z");
    const ts = timestampFromDate(d);
    expect(ts.seconds).toBe(1714979289n);
    expect(ts.nanos).toBe(123_000_000);
    expect(dateFromTimestamp(ts)?.toISOString()).toBe(d.toISOString());
    expect(dateFromTimestamp(create(TimestampSchema))?.getTime()).toBe(0);
  });

  it("nowTimestamp is close to Date.now()", () => {
    const d = dateFromTimestamp(nowTimestamp());
    expect(Math.abs((d?.getTime() ?? 0) - Date.now())).toBeLessThan(5_000);
  });
});

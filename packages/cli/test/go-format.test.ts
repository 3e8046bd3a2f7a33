import { create } from "@bufbuild/protobuf";
import { TaskCreateSchema, TaskExitSchema } from "@berth/api/events";
import { describe, expect, it } from "vitest";
import { goJsonMessage, goJsonString, goRfc3339Nano, goTimeString } from "../src/go-format.js";

describe("Go time formatting", () => {
  it("prints time.Time.String() of a UTC time, trimming trailing zeros", () => {
    expect(goTimeString({ seconds: 1795883219n, nanos: 412739049 })).toBe("2026-11-28 16:26:59.412739049 +0000 UTC");
    expect(goTimeString({ seconds: 1795883219n, nanos: 412000000 })).toBe("2026-11-28 16:26:59.412 +0000 UTC");
    expect(goTimeString({ seconds: 0n, nanos: 0 })).toBe("1970-01-01 00:00:00 +0000 UTC");
  });
  it("prints Go's zero time for an unset timestamp", () => {
    expect(goTimeString(undefined)).toBe("0001-01-01 00:00:00 +0000 UTC");
    expect(goRfc3339Nano(undefined)).toBe("0001-01-01T00:00:00Z");
  });
  it("prints RFC 3339 with nanoseconds", () => {
    expect(goRfc3339Nano({ seconds: 951782400n, nanos: 5 })).toBe("2000-02-29T00:00:00.000000005Z");
    expect(goRfc3339Nano({ seconds: -1n, nanos: 0 })).toBe("1969-12-31T23:59:59Z");
  });
});

describe("Go encoding/json", () => {
  it("escapes strings as Go does (HTML-safe, \\u00XX controls)", () => {
    expect(goJsonString('a<b>&"\\\n\t\b')).toBe('"a\\u003cb\\u003e\\u0026\\"\\\\\\n\\t\\u0008"');
    expect(goJsonString("é\u2028")).toBe('"é\\u2028"');
  });

  it("marshals an event like containerd's gogo struct: snake_case, omitempty, stdtime", () => {
    const exit = create(TaskExitSchema, {
      containerId: "c1",
      id: "c1",
      pid: 42,
      exitStatus: 0,
      exitedAt: { seconds: 1795883219n, nanos: 500000000 },
    });
    expect(goJsonMessage(TaskExitSchema, exit)).toBe(
      '{"container_id":"c1","id":"c1","pid":42,"exited_at":"2026-11-28T16:26:59.5Z"}',
    );
  });

  it("always emits non-nullable timestamps, as Go's zero time when unset", () => {
    const exit = create(TaskExitSchema, { containerId: "c1" });
    expect(goJsonMessage(TaskExitSchema, exit)).toBe('{"container_id":"c1","exited_at":"0001-01-01T00:00:00Z"}');
  });

  it("nests messages and lists, leaving out empty ones", () => {
    const tc = create(TaskCreateSchema, {
      containerId: "c1",
      rootfs: [{ type: "overlay", source: "overlay", options: ["ro"] }],
      io: { stdout: "/fifo/out", terminal: true },
      pid: 7,
    });
    expect(goJsonMessage(TaskCreateSchema, tc)).toBe(
      '{"container_id":"c1","rootfs":[{"type":"overlay","source":"overlay","options":["ro"]}],"io":{"stdout":"/fifo/out","terminal":true},"pid":7}',
    );
  });
});

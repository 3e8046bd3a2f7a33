import { describe, expect, it } from "vitest";
import {
  all,
  cpuVariantFromCpuInfo,
  defaultMatcher,
  defaultSpec,
  format,
  formatAll,
  hostArch,
  hostOS,
  normalize,
  only,
  onlyStrict,
  ordered,
  parse,
  platformVector,
} from "../src/platforms/index.js";
import { isInvalidArgument } from "@berth/errdefs";

describe("parse", () => {
  it.each([
    ["linux/amd64", { os: "linux", architecture: "amd64" }],
    ["linux/x86_64", { os: "linux", architecture: "amd64" }],
    ["linux/aarch64", { os: "linux", architecture: "arm64" }],
    ["linux/arm64/v8", { os: "linux", architecture: "arm64", variant: "v8" }],
    ["linux/arm64", { os: "linux", architecture: "arm64" }],
    ["linux/arm", { os: "linux", architecture: "arm" }],
    ["linux/arm/v7", { os: "linux", architecture: "arm", variant: "v7" }],
    ["linux/arm/7", { os: "linux", architecture: "arm", variant: "v7" }],
    ["linux/armhf", { os: "linux", architecture: "arm" }],
    ["linux/armel", { os: "linux", architecture: "arm", variant: "v6" }],
    ["linux/arm/v6", { os: "linux", architecture: "arm", variant: "v6" }],
    ["linux/i386", { os: "linux", architecture: "386" }],
    ["macos/arm64", { os: "darwin", architecture: "arm64" }],
    ["Linux/AMD64", { os: "linux", architecture: "amd64" }],
    ["windows(10.0.17763)/amd64", { os: "windows", architecture: "amd64", "os.version": "10.0.17763" }],
    ["arm64", { os: hostOS(), architecture: "arm64" }],
    ["s390x", { os: hostOS(), architecture: "s390x" }],
  ])("%s", (spec, want) => {
    expect(parse(spec)).toEqual(want);
  });

  it("a lone OS takes the host architecture", () => {
    expect(parse("linux")).toMatchObject({ os: "linux", architecture: hostArch() });
  });

  it.each(["linux/*", "linux/amd64/v1/extra", "foo", "linux/am d64", "lin ux", ""])("rejects %j", (spec) => {
    let err: unknown;
    try {
      parse(spec);
    } catch (e) {
      err = e;
    }
    expect(isInvalidArgument(err)).toBe(true);
  });
});

describe("format and normalize", () => {
  it("formats", () => {
    expect(format({ os: "linux", architecture: "arm", variant: "v7" })).toBe("linux/arm/v7");
    expect(format({ os: "", architecture: "amd64" })).toBe("unknown");
    expect(formatAll({ os: "windows", architecture: "amd64", "os.version": "10.0" })).toBe("windows(10.0)/amd64");
  });
  it("normalizes", () => {
    expect(normalize({ os: "Linux", architecture: "x86_64", variant: "v1" })).toEqual({
      os: "linux",
      architecture: "amd64",
    });
    expect(normalize({ os: "linux", architecture: "arm" })).toEqual({
      os: "linux",
      architecture: "arm",
      variant: "v7",
    });
    expect(normalize({ os: "linux", architecture: "aarch64", variant: "8" })).toEqual({
      os: "linux",
      architecture: "arm64",
    });
  });
});

// containerd's specifier grammar has no dots, so `arm64/v8.1` is built by hand.
const P = (s: string) => {
  const [os = "", architecture = "", variant] = s.split("/");
  return variant?.includes(".") ? { os, architecture, variant } : parse(s);
};

describe("matching", () => {
  it.each([
    // [host, candidate, only, onlyStrict]
    ["linux/amd64", "linux/amd64", true, true],
    ["linux/amd64", "linux/386", true, false],
    ["linux/amd64", "linux/arm64", false, false],
    ["linux/amd64", "windows/amd64", false, false],
    ["linux/arm/v7", "linux/arm/v6", true, false],
    ["linux/arm/v7", "linux/arm/v5", true, false],
    ["linux/arm/v7", "linux/arm/v8", false, false],
    ["linux/arm/v6", "linux/arm/v7", false, false],
    ["linux/arm/v8", "linux/arm/v7", true, false],
    ["linux/arm64", "linux/arm64/v8", true, true],
    ["linux/arm64", "linux/arm/v8", true, false],
    ["linux/arm64", "linux/arm/v7", true, false],
    ["linux/arm64", "linux/arm", true, false],
    ["linux/arm64/v8.2", "linux/arm64/v8.1", true, false],
    ["linux/arm64/v8.2", "linux/arm64", true, false],
    ["linux/arm64/v8", "linux/arm64/v8.1", false, false],
    ["linux/arm64/v9.1", "linux/arm64/v8.6", true, false],
    ["linux/arm64/v9.1", "linux/arm64/v8.7", false, false],
    ["linux/amd64/v3", "linux/amd64/v2", true, false],
    ["linux/amd64/v3", "linux/amd64", true, false],
    ["linux/amd64/v2", "linux/amd64/v3", false, false],
  ])("%s runs %s: only=%s strict=%s", (host, candidate, wantOnly, wantStrict) => {
    expect(only(P(host)).match(P(candidate))).toBe(wantOnly);
    expect(onlyStrict(P(host)).match(P(candidate))).toBe(wantStrict);
  });

  it("orders compatible platforms best first", () => {
    const m = only(P("linux/arm/v7"));
    const list = ["linux/arm/v5", "linux/arm/v7", "linux/arm/v6"].map(P);
    const sorted = [...list].sort((a, b) => (m.less(a, b) ? -1 : m.less(b, a) ? 1 : 0));
    expect(sorted.map(format)).toEqual(["linux/arm/v7", "linux/arm/v6", "linux/arm/v5"]);
  });

  it("arm64 vector", () => {
    expect(platformVector(normalize(P("linux/arm64"))).map(format)).toEqual([
      "linux/arm64",
      "linux/arm/v8",
      "linux/arm/v7",
      "linux/arm/v6",
      "linux/arm/v5",
    ]);
  });

  it("ordered prefers in the given order and by OS features", () => {
    const m = ordered(P("linux/arm64"), P("linux/amd64"));
    expect(m.less(P("linux/arm64"), P("linux/amd64"))).toBe(true);
    expect(m.less(P("linux/amd64"), P("linux/arm64"))).toBe(false);
    expect(m.match(P("linux/s390x"))).toBe(false);
    const w = ordered({ os: "windows", architecture: "amd64" });
    expect(
      w.less(
        { os: "windows", architecture: "amd64", "os.features": ["win32k"] },
        { os: "windows", architecture: "amd64" },
      ),
    ).toBe(true);
  });

  it("all matches everything", () => {
    expect(all.match(P("plan9/mips"))).toBe(true);
    expect(all.less(P("linux/amd64"), P("linux/arm64"))).toBe(false);
  });

  it("the default matcher runs the host platform", () => {
    expect(defaultMatcher().match(defaultSpec())).toBe(true);
    expect(defaultSpec().os).toBe(hostOS());
  });
});

describe("cpu variants", () => {
  it("reads arm variants and amd64 levels from cpuinfo", () => {
    expect(cpuVariantFromCpuInfo("arm64", "CPU architecture: 8\n")).toBe("v8");
    expect(cpuVariantFromCpuInfo("arm", "CPU architecture: 7\nmodel name: ARMv6-compatible processor\n")).toBe("v6");
    expect(cpuVariantFromCpuInfo("arm", "CPU architecture: 7\n")).toBe("v7");
    expect(cpuVariantFromCpuInfo("amd64", "flags\t: fpu sse2 lm\n")).toBe("v1");
    expect(cpuVariantFromCpuInfo("amd64", "flags\t: cx16 lahf_lm popcnt pni sse4_1 sse4_2 ssse3\n")).toBe("v2");
    expect(cpuVariantFromCpuInfo("riscv64", "")).toBe("");
  });
});

/**
 * Platform specifiers, normalisation and matching with containerd's semantics (github.com/containerd/platforms):
 * `linux/amd64`, `linux/arm/v7`, `arm64`, `windows(10.0.17763)/amd64`; arm variants and their compatibility
 * order; `only`, `onlyStrict`, `ordered`, `any`, `all`; the host's default platform.
 */
import { readFileSync } from "node:fs";
import { arch as nodeArch, endianness, platform as nodePlatform } from "node:os";
import { InvalidArgumentError } from "@berth/errdefs";
import type { Platform } from "@berth/oci-spec";

export type { Platform };

/** Decides whether a platform (from an image or a runtime) is acceptable. */
export interface Matcher {
  match(platform: Platform): boolean;
}

/** A matcher that also orders platforms: `less(a, b)` when `a` is preferred to `b`. */
export interface MatchComparer extends Matcher {
  less(a: Platform, b: Platform): boolean;
}

const SPECIFIER_RE = /^[A-Za-z0-9_-]+$/;
const OS_AND_VERSION_RE = /^([A-Za-z0-9_-]+)(?:\(([A-Za-z0-9_.-]*)\))?$/;

const KNOWN_OS: ReadonlySet<string> = new Set([
  "aix",
  "android",
  "darwin",
  "dragonfly",
  "freebsd",
  "hurd",
  "illumos",
  "ios",
  "js",
  "linux",
  "nacl",
  "netbsd",
  "openbsd",
  "plan9",
  "solaris",
  "windows",
  "zos",
]);

const KNOWN_ARCH: ReadonlySet<string> = new Set([
  "386",
  "amd64",
  "amd64p32",
  "arm",
  "armbe",
  "arm64",
  "arm64be",
  "ppc64",
  "ppc64le",
  "loong64",
  "mips",
  "mipsle",
  "mips64",
  "mips64le",
  "mips64p32",
  "mips64p32le",
  "ppc",
  "riscv",
  "riscv64",
  "s390",
  "s390x",
  "sparc",
  "sparc64",
  "wasm",
]);

/** The host OS as a GOOS value. */
export function hostOS(): string {
  const p = nodePlatform();
  switch (p) {
    case "win32":
      return "windows";
    case "sunos":
      return "solaris";
    default:
      return p;
  }
}

/** The host architecture as a GOARCH value. */
export function hostArch(): string {
  const a = nodeArch();
  switch (a) {
    case "x64":
      return "amd64";
    case "ia32":
      return "386";
    case "ppc64":
      return endianness() === "LE" ? "ppc64le" : "ppc64";
    case "mipsel":
      return "mipsle";
    default:
      return a;
  }
}

export function isKnownOS(os: string): boolean {
  return KNOWN_OS.has(os);
}

export function isKnownArch(arch: string): boolean {
  return KNOWN_ARCH.has(arch);
}

/** Lower-cases and maps aliases (`macos` → `darwin`); empty means the host OS. */
export function normalizeOS(os: string): string {
  if (os === "") return hostOS();
  const lower = os.toLowerCase();
  return lower === "macos" ? "darwin" : lower;
}

/**
 * Normalises an architecture and variant: `x86_64`/`x86-64` → `amd64` (`v1` dropped), `aarch64` → `arm64`
 * (`v8` dropped), `i386` → `386`, `armhf` → `arm/v7`, `armel` → `arm/v6`, `arm` without variant → `arm/v7`.
 */
export function normalizeArch(arch: string, variant: string): { architecture: string; variant: string } {
  let a = arch.toLowerCase();
  let v = variant.toLowerCase();
  switch (a) {
    case "i386":
      a = "386";
      v = "";
      break;
    case "x86_64":
    case "x86-64":
    case "amd64":
      a = "amd64";
      if (v === "v1") v = "";
      break;
    case "aarch64":
    case "arm64":
      a = "arm64";
      if (v === "8" || v === "v8") v = "";
      break;
    case "armhf":
      a = "arm";
      v = "v7";
      break;
    case "armel":
      a = "arm";
      v = "v6";
      break;
    case "arm":
      if (v === "" || v === "7") v = "v7";
      else if (v === "5" || v === "6" || v === "8") v = `v${v}`;
      break;
  }
  return { architecture: a, variant: v };
}

/** A copy of the platform with canonical OS, architecture and variant (other fields kept). */
export function normalize(platform: Platform): Platform {
  const { architecture, variant } = normalizeArch(platform.architecture ?? "", platform.variant ?? "");
  const out: Platform = { ...platform, os: normalizeOS(platform.os ?? ""), architecture };
  if (variant === "") delete out.variant;
  else out.variant = variant;
  return out;
}

function invalid(message: string): Error {
  return new InvalidArgumentError(message);
}

/**
 * Parses `<os>[(<osversion>)]|<arch>|<os>[(<osversion>)]/<arch>[/<variant>]`. A single component is an OS when
 * known (the host architecture is assumed), else an architecture (the host OS is assumed). InvalidArgument for
 * wildcards, bad characters, unknown single components and more than three components.
 */
export function parse(specifier: string): Platform {
  if (specifier.includes("*")) throw invalid(`${JSON.stringify(specifier)}: wildcards not yet supported`);
  const parts = specifier.split("/");
  if (parts.length > 3) throw invalid(`${JSON.stringify(specifier)}: cannot parse platform specifier`);
  const osVer = OS_AND_VERSION_RE.exec(parts[0] ?? "");
  if (osVer === null) {
    throw invalid(`${JSON.stringify(parts[0])} is an invalid OS component of ${JSON.stringify(specifier)}`);
  }
  for (const part of parts.slice(1)) {
    if (!SPECIFIER_RE.test(part)) {
      throw invalid(`${JSON.stringify(part)} is an invalid component of ${JSON.stringify(specifier)}`);
    }
  }
  const os = normalizeOS(osVer[1] ?? "");
  const osVersion = osVer[2] ?? "";
  const withVersion = (p: Platform): Platform => {
    if (osVersion !== "") p["os.version"] = osVersion;
    if (p.variant === "") delete p.variant;
    return p;
  };
  if (parts.length === 1) {
    if (isKnownOS(os)) {
      const architecture = hostArch();
      const cv = architecture === "arm" ? cpuVariant() : "";
      return withVersion({ os, architecture, variant: cv !== "v7" ? cv : "" });
    }
    const n = normalizeArch(parts[0] ?? "", "");
    const variant = n.architecture === "arm" && n.variant === "v7" ? "" : n.variant;
    if (isKnownArch(n.architecture)) return withVersion({ os: hostOS(), architecture: n.architecture, variant });
    throw invalid(`${JSON.stringify(specifier)}: unknown operating system or architecture`);
  }
  if (parts.length === 2) {
    const n = normalizeArch(parts[1] ?? "", "");
    const variant = n.architecture === "arm" && n.variant === "v7" ? "" : n.variant;
    return withVersion({ os, architecture: n.architecture, variant });
  }
  const n = normalizeArch(parts[1] ?? "", parts[2] ?? "");
  const variant = n.architecture === "arm64" && n.variant === "" ? "v8" : n.variant;
  return withVersion({ os, architecture: n.architecture, variant });
}

/** Parses every specifier; the error names the one that failed. */
export function parseAll(specifiers: readonly string[]): Platform[] {
  return specifiers.map((s) => {
    try {
      return parse(s);
    } catch (err) {
      throw new InvalidArgumentError(`invalid platform ${s}`, { cause: err });
    }
  });
}

function joinParts(...parts: string[]): string {
  return parts.filter((p) => p !== "").join("/");
}

/** `os/arch[/variant]`, or `unknown` without an OS. */
export function format(platform: Platform): string {
  if (!platform.os) return "unknown";
  return joinParts(platform.os, platform.architecture ?? "", platform.variant ?? "");
}

/** Like format, with the OS version: `windows(10.0.17763)/amd64`. */
export function formatAll(platform: Platform): string {
  if (!platform.os) return "unknown";
  const osv = platform["os.version"] ? `${platform.os}(${platform["os.version"]})` : platform.os;
  return joinParts(osv, platform.architecture ?? "", platform.variant ?? "");
}

/** Matches platforms equal to `platform` in OS, architecture and variant, after normalising both. */
export function newMatcher(platform: Platform): Matcher {
  const want = normalize(platform);
  return {
    match(p: Platform): boolean {
      const n = normalize(p);
      return n.os === want.os && n.architecture === want.architecture && (n.variant ?? "") === (want.variant ?? "");
    },
  };
}

function withVariant(p: Platform, variant: string): Platform {
  const out: Platform = { os: p.os, architecture: p.architecture };
  if (p["os.version"] !== undefined) out["os.version"] = p["os.version"];
  if (p["os.features"] !== undefined) out["os.features"] = p["os.features"];
  if (variant !== "") out.variant = variant;
  return out;
}

/** The platforms a machine of `platform` can run, best first (containerd's platformVector). */
export function platformVector(platform: Platform): Platform[] {
  const vector: Platform[] = [platform];
  const variantNumber = (v: string | undefined): number => {
    const s = (v ?? "").replace(/^v/, "");
    return /^[0-9]+$/.test(s) ? Number.parseInt(s, 10) : Number.NaN;
  };
  switch (platform.architecture) {
    case "amd64": {
      const level = variantNumber(platform.variant);
      if (level > 1) for (let l = level - 1; l >= 1; l--) vector.push(withVariant(platform, `v${l}`));
      vector.push(withVariant({ ...platform, architecture: "386" }, ""));
      break;
    }
    case "arm": {
      const version = variantNumber(platform.variant);
      if (version > 5) for (let v = version - 1; v >= 5; v--) vector.push(withVariant(platform, `v${v}`));
      break;
    }
    case "arm64": {
      let variant = platform.variant || "v8";
      const dot = variant.indexOf(".");
      const majorPart = dot < 0 ? variant : variant.slice(0, dot);
      const minorPart = dot < 0 ? "" : variant.slice(dot + 1);
      let major = variantNumber(majorPart);
      if (major >= 8) {
        let minor = 0;
        if (variant.length === 4 && dot >= 0 && /^[0-9]+$/.test(minorPart)) minor = Number.parseInt(minorPart, 10);
        const push = (maj: number, min: number) =>
          vector.push(withVariant(platform, min === 0 ? `v${maj}` : `v${maj}.${min}`));
        if (major === 9) {
          for (let m = minor - 1; m >= 0; m--) push(9, m);
          // v9.x diverged from v8.5: v9.x runs v8.{x+5} (up to v8.9).
          minor = Math.min(minor + 5, 9);
          major = 8;
          vector.push(withVariant(platform, `v8.${minor}`));
        }
        for (let m = minor - 1; m >= 0; m--) push(major, m);
      }
      // Every arm64 runs 32-bit arm v8 and below.
      if (variant.startsWith("v8.") || variant.startsWith("v9.")) variant = "v8";
      vector.push(...platformVector(withVariant({ ...platform, architecture: "arm" }, variant)));
      break;
    }
  }
  return vector;
}

function featureCount(p: Platform): number {
  return p["os.features"]?.length ?? 0;
}

function withoutFeatures(p: Platform): Platform {
  const out = { ...p };
  delete out["os.features"];
  return out;
}

/** Matches any of the platforms, preferring them in the order given (and more OS features among equals). */
export function ordered(...platforms: Platform[]): MatchComparer {
  const matchers = platforms.map(newMatcher);
  const less = (p1: Platform, p2: Platform): boolean => {
    for (const m of matchers) {
      const m1 = m.match(p1);
      const m2 = m.match(p2);
      if (m1 && !m2) return true;
      if (m1 || m2) {
        if (m1 && m2 && featureCount(p1) !== featureCount(p2)) return featureCount(p1) > featureCount(p2);
        return false;
      }
    }
    if (featureCount(p1) > 0 || featureCount(p2) > 0) return less(withoutFeatures(p1), withoutFeatures(p2));
    return false;
  };
  return { match: (p) => matchers.some((m) => m.match(p)), less };
}

/** Matches any of the platforms with no preference among them (matching ones sort first). */
export function any(...platforms: Platform[]): MatchComparer {
  const matchers = platforms.map(newMatcher);
  const less = (p1: Platform, p2: Platform): boolean => {
    let m1 = false;
    let m2 = false;
    for (const m of matchers) {
      if (!m1 && m.match(p1)) m1 = true;
      if (!m2 && m.match(p2)) m2 = true;
      if (m1 && m2) {
        if (featureCount(p1) !== featureCount(p2)) return featureCount(p1) > featureCount(p2);
        break;
      }
    }
    if (!m1 && !m2 && (featureCount(p1) > 0 || featureCount(p2) > 0)) {
      return less(withoutFeatures(p1), withoutFeatures(p2));
    }
    return m1 && !m2;
  };
  return { match: (p) => matchers.some((m) => m.match(p)), less };
}

/** Matches every platform, with no preference. */
export const all: MatchComparer = Object.freeze({ match: () => true, less: () => false });

/**
 * One platform and everything it can run, best first: amd64/vN also runs amd64/v(N-1)…v1 and 386; arm/v8 runs
 * v7, v6, v5; arm64/v8.x runs v8.(x-1)…v8 and arm/v8 down to arm/v5; arm64/v9.x runs v9.(x-1)…v9 and v8.(x+5)….
 */
export function only(platform: Platform): MatchComparer {
  return ordered(...platformVector(normalize(platform)));
}

/** One platform only: no lesser variants, no 386 for amd64 (but `arm64` still matches `arm64/v8`). */
export function onlyStrict(platform: Platform): MatchComparer {
  return ordered(normalize(platform));
}

function cpuInfoField(text: string, field: string): string | undefined {
  for (const line of text.split("\n")) {
    const i = line.indexOf(":");
    if (i < 0) continue;
    if (line.slice(0, i).trim().toLowerCase() === field.toLowerCase()) return line.slice(i + 1).trim();
  }
  return undefined;
}

function readCpuInfo(): string {
  try {
    return readFileSync("/proc/cpuinfo", "utf8");
  } catch {
    return "";
  }
}

/** The arm variant (`v5`…`v8`) or amd64 micro-architecture level (`v1`…`v4`) from /proc/cpuinfo text. */
export function cpuVariantFromCpuInfo(architecture: string, cpuinfo: string): string {
  if (architecture === "arm" || architecture === "arm64") {
    let v = cpuInfoField(cpuinfo, "CPU architecture");
    if (v === undefined) v = architecture === "arm64" ? "8" : "unknown";
    if (architecture === "arm" && v === "7") {
      const model = cpuInfoField(cpuinfo, "model name");
      if (model?.toLowerCase().startsWith("armv6-compatible")) v = "6";
    }
    switch (v.toLowerCase()) {
      case "8":
      case "aarch64":
        return "v8";
      case "7":
      case "7m":
      case "?(12)":
      case "?(13)":
      case "?(14)":
      case "?(15)":
      case "?(16)":
      case "?(17)":
        return "v7";
      case "6":
      case "6tej":
        return "v6";
      case "5":
      case "5t":
      case "5te":
      case "5tej":
        return "v5";
      case "4":
      case "4t":
        return "v4";
      case "3":
        return "v3";
      default:
        return "unknown";
    }
  }
  if (architecture === "amd64") {
    const flags = new Set((cpuInfoField(cpuinfo, "flags") ?? "").split(" "));
    if (flags.size <= 1) return "";
    const has = (names: string[]) => names.every((n) => flags.has(n));
    let level = 1;
    if (has(["cx16", "lahf_lm", "popcnt", "pni", "sse4_1", "sse4_2", "ssse3"])) level = 2;
    if (level === 2 && has(["avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "abm", "movbe", "xsave"])) level = 3;
    if (level === 3 && has(["avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"])) level = 4;
    return `v${level}`;
  }
  return "";
}

let cachedVariant: string | undefined;

/** The host CPU variant (arm: `v7`…; amd64: micro-architecture level `v1`…`v4`; else empty). */
export function cpuVariant(): string {
  if (cachedVariant === undefined) cachedVariant = cpuVariantFromCpuInfo(hostArch(), readCpuInfo());
  return cachedVariant;
}

/**
 * The host's platform: OS, architecture and CPU variant (containerd's DefaultSpec). As in containerd 1.6, only
 * arm hosts carry a variant: an amd64 host is `linux/amd64` whatever its micro-architecture level, so images
 * whose index names `amd64` without a variant match (and `ctr` against Berth agrees with containerd 1.6).
 */
export function defaultSpec(): Platform {
  const arch = hostArch();
  const p: Platform = { os: hostOS(), architecture: arch };
  const v = arch === "arm" || arch === "arm64" ? cpuVariant() : "";
  if (v !== "") p.variant = v;
  return p;
}

/** The host's platform and what it can run (containerd's platforms.Default). */
export function defaultMatcher(): MatchComparer {
  return only(defaultSpec());
}

/** The host's platform only (containerd's platforms.DefaultStrict). */
export function defaultStrict(): MatchComparer {
  return onlyStrict(defaultSpec());
}

/** The host's platform as a specifier (`linux/amd64`). */
export function defaultString(): string {
  return format(normalize(defaultSpec()));
}

import { readFileSync } from "node:fs";

let cached: boolean | undefined;

/** True when this process runs in a user namespace (its uid map is not the full identity map). */
export function runningInUserNS(): boolean {
  if (cached !== undefined) return cached;
  try {
    const lines = readFileSync("/proc/self/uid_map", "utf8").trim().split("\n");
    const fields = (lines[0] ?? "").trim().split(/\s+/);
    cached = !(lines.length === 1 && fields[0] === "0" && fields[1] === "0" && fields[2] === "4294967295");
  } catch {
    cached = false;
  }
  return cached;
}

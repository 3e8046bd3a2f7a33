import { readFileSync, statfsSync } from "node:fs";
import { join } from "node:path";

export const CGROUP_ROOT = "/sys/fs/cgroup";
const CGROUP2_SUPER_MAGIC = 0x63677270;

/**
 * How the host mounts cgroups, decided as containerd does: `unified` when /sys/fs/cgroup itself is cgroup2,
 * `hybrid` when only /sys/fs/cgroup/unified is, `legacy` otherwise. Only `unified` means v2 statistics and
 * v2 OOM events; on a hybrid host the controllers (memory, cpu, pids) are all in the v1 hierarchies.
 */
export type CgroupMode = "unified" | "hybrid" | "legacy";

export function cgroupMode(root = CGROUP_ROOT): CgroupMode {
  const isCgroup2 = (path: string) => {
    try {
      return statfsSync(path).type === CGROUP2_SUPER_MAGIC;
    } catch {
      return false;
    }
  };
  if (isCgroup2(root)) return "unified";
  if (isCgroup2(join(root, "unified"))) return "hybrid";
  return "legacy";
}

let hostMode: CgroupMode | undefined;

/** The host's cgroup mode, looked up once (it does not change while the server runs). */
export function hostCgroupMode(): CgroupMode {
  hostMode ??= cgroupMode();
  return hostMode;
}

/** A process's cgroups from /proc/<pid>/cgroup: the v1 path of each controller, and the v2 (`0::`) path. */
export interface ProcessCgroups {
  readonly v1: ReadonlyMap<string, string>;
  readonly v2: string | undefined;
}

export function parseProcCgroup(text: string): ProcessCgroups {
  const v1 = new Map<string, string>();
  let v2: string | undefined;
  for (const line of text.split("\n")) {
    const first = line.indexOf(":");
    const second = line.indexOf(":", first + 1);
    if (first < 0 || second < 0) continue;
    const hierarchy = line.slice(0, first);
    const controllers = line.slice(first + 1, second);
    const path = line.slice(second + 1);
    if (hierarchy === "0" && controllers === "") {
      v2 = path;
      continue;
    }
    for (const c of controllers.split(",")) if (c !== "") v1.set(c, path);
  }
  return { v1, v2 };
}

/** The cgroups of a live process; undefined once it is gone. */
export function processCgroups(pid: number): ProcessCgroups | undefined {
  try {
    return parseProcCgroup(readFileSync(`/proc/${pid}/cgroup`, "utf8"));
  } catch {
    return undefined;
  }
}

/** `<root>/<controller>/<path>` of a v1 controller, or `<root>/<path>` for the unified hierarchy (`""`). */
export function cgroupDir(controller: string, path: string, root = CGROUP_ROOT): string {
  const rel = path.startsWith("/") ? path.slice(1) : path;
  return controller === "" ? join(root, rel) : join(root, controller, rel);
}

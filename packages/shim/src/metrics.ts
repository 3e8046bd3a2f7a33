import { readFileSync } from "node:fs";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { type Metrics, MetricsSchema } from "@berth/api/cgroups/v1";

const CGROUP_ROOT = "/sys/fs/cgroup";

function read(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
}

function num(path: string): bigint {
  const text = read(path)?.trim();
  if (text === undefined || text === "" || text === "max") return 0n;
  try {
    return BigInt(text);
  } catch {
    return 0n;
  }
}

function keyed(path: string): Map<string, bigint> {
  const out = new Map<string, bigint>();
  for (const line of (read(path) ?? "").split("\n")) {
    const [k, v] = line.split(" ");
    if (k && v) out.set(k, BigInt(v));
  }
  return out;
}

/** cgroup v1 statistics of a container's cgroup (`linux.cgroupsPath` of its spec), as containerd reports them. */
export function cgroupV1Metrics(cgroupsPath: string): Metrics {
  const rel = cgroupsPath.startsWith("/") ? cgroupsPath.slice(1) : cgroupsPath;
  const dir = (ctrl: string) => join(CGROUP_ROOT, ctrl, rel);
  const mem = keyed(join(dir("memory"), "memory.stat"));
  const g = (k: string) => mem.get(k) ?? 0n;
  const acct = keyed(join(dir("cpuacct"), "cpuacct.stat"));
  const ticks = 10_000_000n; // USER_HZ 100 → ns per tick
  const throttle = keyed(join(dir("cpu"), "cpu.stat"));
  const entry = (prefix: string) => ({
    usage: num(join(dir("memory"), `${prefix}.usage_in_bytes`)),
    max: num(join(dir("memory"), `${prefix}.max_usage_in_bytes`)),
    limit: num(join(dir("memory"), `${prefix}.limit_in_bytes`)),
    failcnt: num(join(dir("memory"), `${prefix}.failcnt`)),
  });
  const perCpu = (read(join(dir("cpuacct"), "cpuacct.usage_percpu")) ?? "")
    .trim()
    .split(/\s+/)
    .filter((s) => s !== "")
    .map((s) => BigInt(s));
  const pidsLimit = read(join(dir("pids"), "pids.max"))?.trim();
  return create(MetricsSchema, {
    pids: {
      current: num(join(dir("pids"), "pids.current")),
      limit: pidsLimit === undefined || pidsLimit === "max" ? 0n : BigInt(pidsLimit),
    },
    cpu: {
      usage: {
        total: num(join(dir("cpuacct"), "cpuacct.usage")),
        user: (acct.get("user") ?? 0n) * ticks,
        kernel: (acct.get("system") ?? 0n) * ticks,
        perCpu,
      },
      throttling: {
        periods: throttle.get("nr_periods") ?? 0n,
        throttledPeriods: throttle.get("nr_throttled") ?? 0n,
        throttledTime: throttle.get("throttled_time") ?? 0n,
      },
    },
    memory: {
      cache: g("cache"),
      rss: g("rss"),
      rssHuge: g("rss_huge"),
      mappedFile: g("mapped_file"),
      dirty: g("dirty"),
      writeback: g("writeback"),
      pgPgIn: g("pgpgin"),
      pgPgOut: g("pgpgout"),
      pgFault: g("pgfault"),
      pgMajFault: g("pgmajfault"),
      inactiveAnon: g("inactive_anon"),
      activeAnon: g("active_anon"),
      inactiveFile: g("inactive_file"),
      activeFile: g("active_file"),
      unevictable: g("unevictable"),
      hierarchicalMemoryLimit: g("hierarchical_memory_limit"),
      hierarchicalSwapLimit: g("hierarchical_memsw_limit"),
      totalCache: g("total_cache"),
      totalRss: g("total_rss"),
      totalRssHuge: g("total_rss_huge"),
      totalMappedFile: g("total_mapped_file"),
      totalDirty: g("total_dirty"),
      totalWriteback: g("total_writeback"),
      totalPgPgIn: g("total_pgpgin"),
      totalPgPgOut: g("total_pgpgout"),
      totalPgFault: g("total_pgfault"),
      totalPgMajFault: g("total_pgmajfault"),
      totalInactiveAnon: g("total_inactive_anon"),
      totalActiveAnon: g("total_active_anon"),
      totalInactiveFile: g("total_inactive_file"),
      totalActiveFile: g("total_active_file"),
      totalUnevictable: g("total_unevictable"),
      usage: entry("memory"),
      swap: entry("memory.memsw"),
      kernel: entry("memory.kmem"),
      kernelTcp: entry("memory.kmem.tcp"),
    },
  });
}

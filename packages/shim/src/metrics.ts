import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { type Metrics, MetricsSchema } from "@berth/api/cgroups/v1";
import {
  type HugeTlbStatSchema,
  type IOEntrySchema,
  type IOStatSchema,
  type Metrics as MetricsV2,
  MetricsSchema as MetricsV2Schema,
  type PSIStatsSchema,
  type RdmaEntrySchema,
} from "@berth/api/cgroups/v2";

type Init<S extends Parameters<typeof create>[0]> = MessageInitShape<S>;

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

const U64_MAX = 0xffff_ffff_ffff_ffffn;
const U32_MAX = 0xffff_ffff;

/** A counter as the kernel writes it: "max" is unlimited (all ones), negative or garbage is 0. */
function counter(text: string | undefined): bigint {
  const t = text?.trim();
  if (t === undefined || t === "") return 0n;
  if (t === "max") return U64_MAX;
  if (!/^\d+$/.test(t)) return 0n;
  const v = BigInt(t);
  return v > U64_MAX ? U64_MAX : v;
}

/** `key value` lines (cpu.stat, memory.stat, memory.events); unparsable values are left out. */
function flatKeyed(text: string | undefined): Map<string, bigint> {
  const out = new Map<string, bigint>();
  for (const line of (text ?? "").split("\n")) {
    const parts = line.trim().split(/\s+/);
    if (parts.length !== 2) continue;
    const [k, v] = parts as [string, string];
    if (/^-?\d+$/.test(v)) out.set(k, v.startsWith("-") ? 0n : counter(v));
  }
  return out;
}

/** A *.pressure file: `some|full avg10=… avg60=… avg300=… total=…`. */
function pressure(text: string | undefined): Init<typeof PSIStatsSchema> | undefined {
  if (text === undefined) return undefined;
  const out: { some?: Init<typeof PSIStatsSchema>["some"]; full?: Init<typeof PSIStatsSchema>["some"] } = {};
  for (const line of text.split("\n")) {
    const [kind, ...fields] = line.trim().split(/\s+/);
    if (kind !== "some" && kind !== "full") continue;
    const data = { avg10: 0, avg60: 0, avg300: 0, total: 0n };
    for (const f of fields) {
      const [k, v] = f.split("=");
      if (v === undefined) continue;
      if (k === "total") data.total = counter(v);
      else if (k === "avg10" || k === "avg60" || k === "avg300") data[k] = Number.parseFloat(v) || 0;
    }
    out[kind] = data;
  }
  return out;
}

/** io.stat: `MAJ:MIN rbytes=… wbytes=… rios=… wios=… …` per device. */
function ioEntries(text: string | undefined): { usage: Init<typeof IOEntrySchema>[] } {
  const usage: { major: bigint; minor: bigint; rbytes?: bigint; wbytes?: bigint; rios?: bigint; wios?: bigint }[] = [];
  for (const line of (text ?? "").split("\n")) {
    const [dev, ...fields] = line.trim().split(/\s+/);
    const m = /^(\d+):(\d+)$/.exec(dev ?? "");
    if (m === null) continue;
    const entry: (typeof usage)[number] = { major: BigInt(m[1] as string), minor: BigInt(m[2] as string) };
    for (const f of fields) {
      const [k, v] = f.split("=");
      if ((k === "rbytes" || k === "wbytes" || k === "rios" || k === "wios") && v !== undefined && /^\d+$/.test(v)) {
        entry[k] = counter(v);
      }
    }
    usage.push(entry);
  }
  return { usage };
}

/** rdma.current / rdma.max: `DEVICE hca_handle=N hca_object=N` ("max": all ones, 32-bit). */
function rdmaEntries(text: string | undefined): Init<typeof RdmaEntrySchema>[] {
  const out: { device: string; hcaHandles?: number; hcaObjects?: number }[] = [];
  for (const line of (text ?? "").split("\n")) {
    const [device, ...fields] = line.trim().split(/\s+/);
    if (device === undefined || device === "" || fields.length === 0) continue;
    const entry: (typeof out)[number] = { device };
    for (const f of fields) {
      const [k, v] = f.split("=");
      const n = v === "max" ? U32_MAX : /^\d+$/.test(v ?? "") ? Math.min(Number(v), U32_MAX) : undefined;
      if (n === undefined) continue;
      if (k === "hca_handle") entry.hcaHandles = n;
      else if (k === "hca_object") entry.hcaObjects = n;
    }
    out.push(entry);
  }
  return out;
}

/** hugetlb.<size>.current / .max, one entry per page size (sorted by size name). */
function hugetlb(dir: string): Init<typeof HugeTlbStatSchema>[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const bySize = new Map<string, { pagesize: string; current?: bigint; max?: bigint }>();
  for (const name of names) {
    const m = /^hugetlb\.([^.]+)\.(current|max)$/.exec(name);
    if (m === null) continue;
    const size = m[1] as string;
    const entry = bySize.get(size) ?? { pagesize: size };
    entry[m[2] as "current" | "max"] = counter(read(join(dir, name)));
    bySize.set(size, entry);
  }
  return [...bySize.keys()].sort().map((k) => bySize.get(k) as Init<typeof HugeTlbStatSchema>);
}

/**
 * cgroup v2 statistics of the cgroup directory `dir` (unified hierarchy), as containerd's shim reports them
 * (io.containerd.cgroups.v2.Metrics), plus the pressure (PSI) and peak fields where the kernel has them.
 * Files a controller does not provide are reported as zero.
 */
export function cgroupV2Metrics(dir: string): MetricsV2 {
  const file = (name: string) => read(join(dir, name));
  const cpu = flatKeyed(file("cpu.stat"));
  const mem = flatKeyed(file("memory.stat"));
  const eventsText = file("memory.events");
  const events = flatKeyed(eventsText);
  const c = (k: string) => cpu.get(k) ?? 0n;
  const m = (k: string) => mem.get(k) ?? 0n;
  const e = (k: string) => events.get(k) ?? 0n;
  const io = ioEntries(file("io.stat"));
  const ioPsi = pressure(file("io.pressure"));
  return create(MetricsV2Schema, {
    pids: { current: counter(file("pids.current")), limit: counter(file("pids.max")) },
    cpu: {
      usageUsec: c("usage_usec"),
      userUsec: c("user_usec"),
      systemUsec: c("system_usec"),
      nrPeriods: c("nr_periods"),
      nrThrottled: c("nr_throttled"),
      throttledUsec: c("throttled_usec"),
      nrBursts: c("nr_bursts"),
      burstUsec: c("burst_usec"),
      psi: pressure(file("cpu.pressure")),
    },
    memory: {
      anon: m("anon"),
      file: m("file"),
      kernelStack: m("kernel_stack"),
      slab: m("slab"),
      sock: m("sock"),
      shmem: m("shmem"),
      fileMapped: m("file_mapped"),
      fileDirty: m("file_dirty"),
      fileWriteback: m("file_writeback"),
      anonThp: m("anon_thp"),
      inactiveAnon: m("inactive_anon"),
      activeAnon: m("active_anon"),
      inactiveFile: m("inactive_file"),
      activeFile: m("active_file"),
      unevictable: m("unevictable"),
      slabReclaimable: m("slab_reclaimable"),
      slabUnreclaimable: m("slab_unreclaimable"),
      pgfault: m("pgfault"),
      pgmajfault: m("pgmajfault"),
      workingsetRefault: m("workingset_refault"),
      workingsetActivate: m("workingset_activate"),
      workingsetNodereclaim: m("workingset_nodereclaim"),
      pgrefill: m("pgrefill"),
      pgscan: m("pgscan"),
      pgsteal: m("pgsteal"),
      pgactivate: m("pgactivate"),
      pgdeactivate: m("pgdeactivate"),
      pglazyfree: m("pglazyfree"),
      pglazyfreed: m("pglazyfreed"),
      thpFaultAlloc: m("thp_fault_alloc"),
      thpCollapseAlloc: m("thp_collapse_alloc"),
      usage: counter(file("memory.current")),
      usageLimit: counter(file("memory.max")),
      swapUsage: counter(file("memory.swap.current")),
      swapLimit: counter(file("memory.swap.max")),
      maxUsage: counter(file("memory.peak")),
      swapMaxUsage: counter(file("memory.swap.peak")),
      psi: pressure(file("memory.pressure")),
    },
    ...(eventsText !== undefined
      ? { memoryEvents: { low: e("low"), high: e("high"), max: e("max"), oom: e("oom"), oomKill: e("oom_kill") } }
      : {}),
    io: (ioPsi === undefined ? io : { ...io, psi: ioPsi }) as Init<typeof IOStatSchema>,
    rdma: { current: rdmaEntries(file("rdma.current")), limit: rdmaEntries(file("rdma.max")) },
    hugetlb: hugetlb(dir),
  });
}

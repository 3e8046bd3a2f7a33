/**
 * cgroup handling of the shim without a daemon: the cgroup mode decision, /proc/<pid>/cgroup parsing, cgroup v2
 * statistics from a fixture directory of real-looking files and from a real cgroup in the host's unified
 * hierarchy, the cgroup v2 OOM watcher on a memory.events file, and `binary://` logger command lines.
 */
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { InvalidArgumentError } from "@berth/errdefs";
import { afterEach, describe, expect, it } from "vitest";
import { loggerCommand } from "../src/binary-logger.js";
import { cgroupMode, parseProcCgroup, processCgroups } from "../src/cgroups.js";
import { cgroupV2Metrics } from "../src/metrics.js";
import { CgroupV2OomWatcher, oomKillCount } from "../src/oom.js";

const MAX = 0xffff_ffff_ffff_ffffn;
const scratch: string[] = [];

function fixture(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), "berth-cgroup-fixture-"));
  scratch.push(dir);
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return dir;
}

afterEach(() => {
  for (const dir of scratch.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe("cgroup mode and /proc/<pid>/cgroup", () => {
  it("calls this host what containerd calls it", () => {
    // tmpfs at /sys/fs/cgroup with cgroup2 at /sys/fs/cgroup/unified: hybrid, so v1 statistics and OOM events
    const expected = existsSync("/sys/fs/cgroup/cgroup.controllers")
      ? "unified"
      : existsSync("/sys/fs/cgroup/unified/cgroup.controllers")
        ? "hybrid"
        : "legacy";
    expect(cgroupMode()).toBe(expected);
    expect(cgroupMode("/nonexistent")).toBe("legacy");
    const root = fixture({});
    expect(cgroupMode(root)).toBe("legacy"); // a plain directory is no cgroup2 mount
  });

  it("parses v1 controllers (also co-mounted ones) and the v2 path", () => {
    const cg = parseProcCgroup(
      [
        "12:pids:/default/t1",
        "4:memory:/default/t1",
        "2:cpu,cpuacct:/default/t1",
        "1:name=systemd:/user.slice",
        "0::/default/t1",
        "garbage",
        "",
      ].join("\n"),
    );
    expect(cg.v1.get("memory")).toBe("/default/t1");
    expect(cg.v1.get("cpu")).toBe("/default/t1");
    expect(cg.v1.get("cpuacct")).toBe("/default/t1");
    expect(cg.v1.get("name=systemd")).toBe("/user.slice");
    expect(cg.v2).toBe("/default/t1");
    expect(parseProcCgroup("0::/a:b\n").v2).toBe("/a:b"); // a colon in the path is part of it
    expect(parseProcCgroup("4:memory:/x\n").v2).toBeUndefined();
  });

  it("reads a live process's cgroups and nothing for a gone one", () => {
    expect(processCgroups(process.pid)?.v2).toBeDefined();
    expect(processCgroups(2 ** 30)).toBeUndefined();
  });
});

describe("cgroup v2 statistics", () => {
  it("reads every controller file of a fixture cgroup", () => {
    const dir = fixture({
      "cgroup.controllers": "cpu io memory pids hugetlb rdma\n",
      "cpu.stat":
        "usage_usec 123456\nuser_usec 100000\nsystem_usec 23456\nnr_periods 10\nnr_throttled 2\nthrottled_usec 5000\nnr_bursts 1\nburst_usec 7\n",
      "cpu.pressure":
        "some avg10=1.50 avg60=0.25 avg300=0.00 total=98765\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=12\n",
      "memory.stat": [
        "anon 4096000",
        "file 8192",
        "kernel_stack 16384",
        "slab 32768",
        "sock 0",
        "shmem 4096",
        "file_mapped 2048",
        "file_dirty 1",
        "file_writeback 2",
        "anon_thp 2097152",
        "inactive_anon 100",
        "active_anon 200",
        "inactive_file 300",
        "active_file 400",
        "unevictable 5",
        "slab_reclaimable 20000",
        "slab_unreclaimable 12768",
        "pgfault 1000",
        "pgmajfault 3",
        "workingset_refault 4",
        "workingset_activate 6",
        "workingset_nodereclaim 7",
        "pgrefill 8",
        "pgscan 9",
        "pgsteal 10",
        "pgactivate 11",
        "pgdeactivate 12",
        "pglazyfree 13",
        "pglazyfreed 14",
        "thp_fault_alloc 15",
        "thp_collapse_alloc 16",
        "some_future_key 17",
        "",
      ].join("\n"),
      "memory.current": "5242880\n",
      "memory.max": "8388608\n",
      "memory.swap.current": "0\n",
      "memory.swap.max": "max\n",
      "memory.peak": "6291456\n",
      "memory.events": "low 0\nhigh 1\nmax 25\noom 2\noom_kill 1\n",
      "memory.pressure":
        "some avg10=0.00 avg60=0.00 avg300=0.00 total=5\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=4\n",
      "pids.current": "3\n",
      "pids.max": "max\n",
      "io.stat":
        "8:0 rbytes=1048576 wbytes=4096 rios=10 wios=1 dbytes=0 dios=0\n253:1 rbytes=0 wbytes=8192 rios=0 wios=2 dbytes=0 dios=0\n",
      "io.pressure":
        "some avg10=0.00 avg60=0.00 avg300=0.00 total=77\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=66\n",
      "rdma.current": "mlx4_0 hca_handle=2 hca_object=2000\n",
      "rdma.max": "mlx4_0 hca_handle=max hca_object=max\n",
      "hugetlb.2MB.current": "0\n",
      "hugetlb.2MB.max": "max\n",
      "hugetlb.1GB.current": "1073741824\n",
      "hugetlb.1GB.max": "2147483648\n",
      "hugetlb.2MB.events": "max 0\n",
    });
    const m = cgroupV2Metrics(dir);
    expect(m.pids).toMatchObject({ current: 3n, limit: MAX });
    expect(m.cpu).toMatchObject({
      usageUsec: 123456n,
      userUsec: 100000n,
      systemUsec: 23456n,
      nrPeriods: 10n,
      nrThrottled: 2n,
      throttledUsec: 5000n,
      nrBursts: 1n,
      burstUsec: 7n,
    });
    expect(m.cpu?.psi?.some).toMatchObject({ avg10: 1.5, avg60: 0.25, avg300: 0, total: 98765n });
    expect(m.cpu?.psi?.full?.total).toBe(12n);
    expect(m.memory).toMatchObject({
      anon: 4096000n,
      file: 8192n,
      kernelStack: 16384n,
      slab: 32768n,
      shmem: 4096n,
      fileMapped: 2048n,
      fileDirty: 1n,
      fileWriteback: 2n,
      anonThp: 2097152n,
      inactiveAnon: 100n,
      activeAnon: 200n,
      inactiveFile: 300n,
      activeFile: 400n,
      unevictable: 5n,
      slabReclaimable: 20000n,
      slabUnreclaimable: 12768n,
      pgfault: 1000n,
      pgmajfault: 3n,
      workingsetRefault: 4n,
      workingsetActivate: 6n,
      workingsetNodereclaim: 7n,
      pgrefill: 8n,
      pgscan: 9n,
      pgsteal: 10n,
      pgactivate: 11n,
      pgdeactivate: 12n,
      pglazyfree: 13n,
      pglazyfreed: 14n,
      thpFaultAlloc: 15n,
      thpCollapseAlloc: 16n,
      usage: 5242880n,
      usageLimit: 8388608n,
      swapUsage: 0n,
      swapLimit: MAX,
      maxUsage: 6291456n,
      swapMaxUsage: 0n,
    });
    expect(m.memory?.psi?.full?.total).toBe(4n);
    expect(m.memoryEvents).toMatchObject({ low: 0n, high: 1n, max: 25n, oom: 2n, oomKill: 1n });
    expect(m.io?.usage.map((e) => [e.major, e.minor, e.rbytes, e.wbytes, e.rios, e.wios])).toEqual([
      [8n, 0n, 1048576n, 4096n, 10n, 1n],
      [253n, 1n, 0n, 8192n, 0n, 2n],
    ]);
    expect(m.io?.psi?.some?.total).toBe(77n);
    expect(m.rdma?.current.map((e) => [e.device, e.hcaHandles, e.hcaObjects])).toEqual([["mlx4_0", 2, 2000]]);
    expect(m.rdma?.limit.map((e) => [e.device, e.hcaHandles, e.hcaObjects])).toEqual([
      ["mlx4_0", 0xffff_ffff, 0xffff_ffff],
    ]);
    expect(m.hugetlb.map((h) => [h.pagesize, h.current, h.max])).toEqual([
      ["1GB", 1073741824n, 2147483648n],
      ["2MB", 0n, MAX],
    ]);
  });

  it("reports zeros, not errors, for missing files and garbage", () => {
    const dir = fixture({
      "cpu.stat": "usage_usec notanumber\nuser_usec -5\nbroken line with words\nsystem_usec 7\n",
      "memory.current": "garbage\n",
      "pids.max": "-1\n",
      "io.stat": "not-a-device rbytes=1\n8:16 rbytes=x wbytes=3\n",
    });
    const m = cgroupV2Metrics(dir);
    expect(m.cpu).toMatchObject({ usageUsec: 0n, userUsec: 0n, systemUsec: 7n });
    expect(m.memory?.usage).toBe(0n);
    expect(m.pids?.limit).toBe(0n);
    expect(m.memoryEvents).toBeUndefined(); // no memory.events, no memory_events (as containerd)
    expect(m.io?.usage.map((e) => [e.major, e.minor, e.rbytes, e.wbytes])).toEqual([[8n, 16n, 0n, 3n]]);
    expect(m.hugetlb).toEqual([]);
    expect(cgroupV2Metrics(join(dir, "gone")).cpu?.usageUsec).toBe(0n);
  });

  const unified = "/sys/fs/cgroup/unified";
  const canMakeCgroup = process.getuid?.() === 0 && existsSync(join(unified, "cgroup.procs"));

  it.skipIf(!canMakeCgroup)("reads a real cgroup v2 that a process was moved into", async () => {
    const dir = join(unified, `berth-shim-test-${process.pid}`);
    mkdirSync(dir);
    const child = spawn("sh", ["-c", "read go; i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done"], {
      stdio: ["pipe", "ignore", "ignore"],
    });
    try {
      const pid = child.pid as number;
      writeFileSync(join(dir, "cgroup.procs"), String(pid));
      expect(processCgroups(pid)?.v2).toBe(`/berth-shim-test-${process.pid}`);
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.stdin?.end("go\n");
      await exited;
      const m = cgroupV2Metrics(dir);
      const usage = /^usage_usec (\d+)$/m.exec(readFileSync(join(dir, "cpu.stat"), "utf8"))?.[1];
      expect(m.cpu?.usageUsec).toBe(BigInt(usage as string));
      expect(m.cpu?.usageUsec ?? 0n).toBeGreaterThan(10_000n); // the busy loop ran in there
      expect((m.cpu?.userUsec ?? 0n) + (m.cpu?.systemUsec ?? 0n)).toBeGreaterThan(0n);
    } finally {
      if (child.exitCode === null) child.kill("SIGKILL");
      for (let i = 0; i < 50 && existsSync(dir); i++) {
        try {
          rmdirSync(dir);
        } catch {
          await new Promise((r) => setTimeout(r, 20)); // still busy until the exit is fully accounted
        }
      }
    }
    expect(existsSync(dir)).toBe(false);
  });
});

describe("cgroup v2 OOM watcher", () => {
  it("reads oom_kill from memory.events", () => {
    expect(oomKillCount("low 0\nhigh 0\nmax 3\noom 2\noom_kill 2\noom_group_kill 0\n")).toBe(2n);
    expect(oomKillCount("low 0\n")).toBe(0n);
  });

  it("reports each growth of oom_kill, nothing for other changes, and stops with the cgroup", async () => {
    const dir = fixture({ "memory.events": "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n" });
    const seen: string[] = [];
    const watcher = new CgroupV2OomWatcher((id) => seen.push(id));
    watcher.addDir("c1", dir);
    const settle = () => new Promise((r) => setTimeout(r, 150));
    try {
      writeFileSync(join(dir, "memory.events"), "low 0\nhigh 0\nmax 4\noom 0\noom_kill 0\n");
      await settle();
      expect(seen).toEqual([]);
      writeFileSync(join(dir, "memory.events"), "low 0\nhigh 0\nmax 9\noom 1\noom_kill 1\n");
      await settle();
      expect(seen).toEqual(["c1"]);
      writeFileSync(join(dir, "memory.events"), "low 0\nhigh 0\nmax 9\noom 1\noom_kill 1\n");
      await settle();
      expect(seen).toEqual(["c1"]);
      writeFileSync(join(dir, "memory.events"), "low 0\nhigh 0\nmax 9\noom 3\noom_kill 3\n");
      await settle();
      expect(seen).toEqual(["c1", "c1"]);
      rmSync(join(dir, "memory.events"));
      await settle();
      writeFileSync(join(dir, "memory.events"), "oom_kill 9\n");
      await settle();
      expect(seen).toEqual(["c1", "c1"]);
    } finally {
      watcher.close();
    }
  });

  it("does not watch a cgroup without a memory controller", () => {
    const dir = fixture({});
    const watcher = new CgroupV2OomWatcher(() => {});
    watcher.addDir("c2", dir);
    watcher.remove("c2");
    watcher.close();
  });
});

describe("binary:// logger command", () => {
  it("passes each query key and its first value as arguments", () => {
    expect(loggerCommand("binary:///usr/local/bin/logger?x=1&y=two&x=3&flag")).toEqual({
      path: "/usr/local/bin/logger",
      args: ["x", "1", "y", "two", "flag", ""],
    });
    expect(loggerCommand("binary:///opt/my%20logger")).toEqual({ path: "/opt/my logger", args: [] });
  });

  it("refuses URIs without a binary or with NUL", () => {
    for (const bad of ["binary://", "binary:///", "binary:///a%00b", "binary:///log?k=%00", "file:///x", "::"]) {
      expect(() => loggerCommand(bad), bad).toThrow(InvalidArgumentError);
    }
  });
});

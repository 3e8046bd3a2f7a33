import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isAlreadyExists, isNotFound } from "@berth/errdefs";
import { afterAll, describe, expect, it, vi } from "vitest";

type Lib = typeof import("../src/index.js");

/** The module as loaded with or without BERTH_NO_NATIVE_SPAWN (the node:child_process fallback). */
async function load(fallback: boolean): Promise<Lib> {
  vi.resetModules();
  if (fallback) process.env.BERTH_NO_NATIVE_SPAWN = "1";
  else delete process.env.BERTH_NO_NATIVE_SPAWN;
  try {
    return await import("../src/index.js");
  } finally {
    delete process.env.BERTH_NO_NATIVE_SPAWN;
  }
}

const dir = mkdtempSync(join(tmpdir(), "berth-spawn-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe.each([
  ["posix_spawn", false],
  ["node:child_process", true],
])("run through %s", (_name, fallback) => {
  let run: Lib["run"];
  let makeFifo: Lib["makeFifo"];
  it("loads (the package build makes the addon; BERTH_NO_NATIVE_SPAWN=1 turns it off)", async () => {
    const lib = await load(fallback);
    ({ run, makeFifo } = lib);
    expect(lib.nativeSpawn).toBe(!fallback);
    expect(lib.rawSpawn()).toBeDefined();
  });

  it("collects stdout and stderr and reports the exit code", async () => {
    const r = await run("/bin/sh", ["-c", "echo out; echo err >&2; exit 3"]);
    expect(r).toMatchObject({ code: 3, signal: null });
    expect(r.stdout.toString()).toBe("out\n");
    expect(r.stderr.toString()).toBe("err\n");
  });

  it("passes input on stdin, the environment, and the working directory", async () => {
    const r = await run("sh", ["-c", 'read line; echo "$line $FOO $(pwd)"'], {
      input: Buffer.from("hello\n"),
      env: { FOO: "bar", PATH: "/usr/bin:/bin" },
      cwd: dir,
    });
    expect(r.stdout.toString()).toBe(`hello bar ${dir}\n`);
  });

  it("passes large input without blocking", async () => {
    const big = Buffer.alloc(1 << 20, "x");
    const r = await run("wc", ["-c"], { input: big });
    expect(r.stdout.toString().trim()).toBe(String(1 << 20));
  });

  it("reports the signal that ended the child", async () => {
    const r = await run("/bin/sh", ["-c", "kill -TERM $$"]);
    expect(r).toMatchObject({ code: null, signal: "SIGTERM" });
  });

  it("kills the child at its timeout and when aborted", async () => {
    const t = await run("sleep", ["10"], { timeoutMs: 50 });
    expect(t.signal).toBe("SIGKILL");
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 50);
    const a = await run("sleep", ["10"], { signal: ac.signal });
    expect(a.signal).toBe("SIGKILL");
  });

  it("rejects with NotFound for a missing binary, and leaks no fds", async () => {
    const before = fdCount();
    await expect(run("/nonexistent/binary", [])).rejects.toSatisfy(isNotFound);
    await run("true", []);
    expect(fdCount()).toBe(before);
  });

  it("does not wait for a grandchild that keeps the output open", async () => {
    const started = Date.now();
    const r = await run("/bin/sh", ["-c", "sleep 5 & echo parent"]);
    expect(r.code).toBe(0);
    expect(r.stdout.toString()).toBe("parent\n");
    expect(Date.now() - started).toBeLessThan(3000);
  });

  it("makeFifo creates a fifo with the mode, and AlreadyExists when the path exists", async () => {
    const path = join(dir, `fifo-${fallback}`);
    await makeFifo(path, 0o700);
    const st = statSync(path);
    expect(st.isFIFO()).toBe(true);
    expect(st.mode & 0o777).toBe(0o700);
    await expect(makeFifo(path, 0o700)).rejects.toSatisfy(isAlreadyExists);
    writeFileSync(join(dir, "file"), "");
    await expect(makeFifo(join(dir, "file"), 0o700)).rejects.toSatisfy(isAlreadyExists);
    await expect(makeFifo(join(dir, "missing", "fifo"), 0o700)).rejects.toSatisfy(isNotFound);
  });
});

function fdCount(): number {
  return readdirSync("/proc/self/fd").length;
}

/** The built package, as a string literal for child scripts to import. */
const BUILT = JSON.stringify(new URL("../dist/index.js", import.meta.url).pathname);

/**
 * Runs `script` (an ES module printing one JSON line) in a child node with --expose-gc, so that this test's own
 * heap does not blur memory numbers; returns what it printed.
 */
async function childJson<T>(script: string): Promise<T> {
  const r = await (await load(false)).run(process.execPath, ["--expose-gc", "--input-type=module", "-e", script]);
  expect(r.stderr.toString()).toBe("");
  return JSON.parse(r.stdout.toString()) as T;
}

describe("trimMallocHeap", () => {
  it("gives freed malloc memory back: a child's RSS drops after many freed buffers", async () => {
    const out = await childJson<{ trimmed: boolean; before: number; after: number }>(`
      import { trimMallocHeap } from ${BUILT};
      const keep = [];
      // interleaved lifetimes: freed 64 KiB chunks between live ones fragment the heap, as socket reads do
      for (let i = 0; i < 4000; i++) { const b = Buffer.allocUnsafeSlow(65536).fill(1); if (i % 50 === 0) keep.push(b); }
      globalThis.gc(); globalThis.gc();
      const before = process.memoryUsage.rss();
      const trimmed = trimMallocHeap();
      const after = process.memoryUsage.rss();
      console.log(JSON.stringify({ trimmed, before, after, kept: keep.length }));
    `);
    expect(out.trimmed).toBe(true);
    expect(out.before - out.after).toBeGreaterThan(16 * 1024 * 1024);
  });
});

describe("setMallocThresholds", () => {
  /**
   * RSS kept (MiB) after 24 MiB of 64 KiB Buffers are freed, in a child process, after a 16 MiB block was freed
   * first: that block raises glibc's dynamic trim threshold to 32 MiB, so by default the freed top stays.
   */
  async function keptAfterFree(fixed: boolean): Promise<number> {
    const out = await childJson<{ set?: boolean; kept: number }>(`
      import { setMallocThresholds } from ${BUILT};
      const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
      const settle = async () => { globalThis.gc(); globalThis.gc(); await sleep(150); globalThis.gc(); await sleep(50); };
      const set = ${fixed} ? setMallocThresholds() : undefined;
      let big = Buffer.allocUnsafeSlow(16 << 20).fill(1);
      big = undefined;
      await settle();
      const before = process.memoryUsage.rss();
      let many = [];
      for (let i = 0; i < 384; i++) many.push(Buffer.allocUnsafeSlow(65536).fill(1));
      many = undefined;
      await settle();
      console.log(JSON.stringify({ set, kept: (process.memoryUsage.rss() - before) / 1048576 }));
    `);
    if (fixed) expect(out.set).toBe(true);
    return out.kept;
  }

  it("freed memory at the top of the heap goes back at once, where glibc's grown threshold keeps it", async () => {
    expect(await keptAfterFree(false)).toBeGreaterThan(4);
    expect(await keptAfterFree(true)).toBeLessThan(2);
  });

  it("refuses thresholds that are not positive 32-bit sizes", async () => {
    const { setMallocThresholds } = await load(false);
    expect(() => setMallocThresholds({ mmapBytes: 0, trimBytes: 1 << 20 })).toThrow(/mallopt: Invalid argument/);
    expect(() => setMallocThresholds({ mmapBytes: 1 << 20, trimBytes: 2 ** 32 })).toThrow(/mallopt: Invalid argument/);
  });
});

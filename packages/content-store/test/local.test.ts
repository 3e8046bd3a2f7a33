import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, readFile, readdir, rm, stat, unlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isNotFound } from "@berth/errdefs";
import { digestOf } from "@berth/oci-spec";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Ctx } from "../src/content.js";
import { type LocalContentStore, createLocalStore } from "../src/local/index.js";
import { contentSuite } from "../src/testsuite/index.js";

contentSuite("local", async () => {
  const root = await mkdtemp(join(tmpdir(), "berth-content-"));
  const store = createLocalStore({ root });
  return {
    store,
    cleanup: async () => {
      await store.close();
      await rm(root, { recursive: true, force: true });
    },
    expireAbandonedIngests: async () => {
      await store.expireIngests(new Date(Date.now() + 60_000));
    },
  };
});

const ctx: Ctx = { namespace: "default" };
const RFC3339_NANO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$/;
const ingestName = (ref: string) => createHash("sha256").update(ref).digest("hex");

describe("local store", () => {
  let root: string;
  let store: LocalContentStore;

  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), "berth-content-local-"));
    store = createLocalStore({ root });
  });
  afterEach(async () => {
    await store.close();
    await rm(root, { recursive: true, force: true });
  });

  it("lays ingests and blobs out as containerd does", async () => {
    const data = Buffer.from("layout check");
    const digest = digestOf(data);
    const w = await store.writer(ctx, { ref: "default/1/layout", desc: { size: data.byteLength, digest } });
    await w.write(data);

    const dir = join(root, "ingest", ingestName("default/1/layout"));
    expect((await readdir(dir)).sort()).toEqual(["data", "ref", "startedat", "total", "updatedat"]);
    expect(await readFile(join(dir, "ref"), "utf8")).toBe("default/1/layout");
    expect(await readFile(join(dir, "total"), "utf8")).toBe(String(data.byteLength));
    expect(await readFile(join(dir, "startedat"), "utf8")).toMatch(RFC3339_NANO);
    expect(await readFile(join(dir, "updatedat"), "utf8")).toMatch(RFC3339_NANO);
    expect((await readFile(join(dir, "data"))).equals(data)).toBe(true);
    // Nothing under blobs/ before the commit.
    expect(await readdir(join(root, "blobs"))).toEqual([]);

    const before = Date.now();
    await w.commit(data.byteLength, digest);
    const blob = join(root, "blobs", "sha256", digest.slice("sha256:".length));
    const st = await stat(blob);
    expect(st.mode & 0o333).toBe(0);
    expect(st.mtimeMs).toBeGreaterThanOrEqual(before - 1000);
    expect((await readFile(blob)).equals(data)).toBe(true);
    expect(await readdir(join(root, "ingest"))).toEqual([]);
    const info = await store.info(ctx, digest);
    expect(Math.abs(info.createdAt.getTime() - st.mtimeMs)).toBeLessThanOrEqual(1);
  });

  it("writes no total when the size is unknown and updatedat on close", async () => {
    const w = await store.writer(ctx, { ref: "no-total" });
    await w.write(Buffer.from("x"));
    const dir = join(root, "ingest", ingestName("no-total"));
    expect((await readdir(dir)).sort()).toEqual(["data", "ref", "startedat", "updatedat"]);
    const startedText = await readFile(join(dir, "startedat"), "utf8");
    await new Promise((r) => setTimeout(r, 15));
    await w.write(Buffer.from("y"));
    await w.close();
    const updatedText = await readFile(join(dir, "updatedat"), "utf8");
    expect(Date.parse(updatedText)).toBeGreaterThan(Date.parse(startedText));
    expect((await readdir(dir)).some((n) => n.endsWith(".tmp"))).toBe(false);
  });

  it("resumes after a crash from the stored offset and verifies the digest", async () => {
    const data = randomBytes(5 * 1024 * 1024 + 3);
    const digest = digestOf(data);
    const half = Math.floor(data.byteLength / 2);
    const w = await store.writer(ctx, { ref: "crash", desc: { size: data.byteLength, digest } });
    await w.write(data.subarray(0, half));
    // The "crash": the writer is dropped without close; a new process opens the same root.
    const reopened = createLocalStore({ root });
    expect((await reopened.status(ctx, "crash")).offset).toBe(half);
    const w2 = await reopened.writer(ctx, { ref: "crash", desc: { size: data.byteLength, digest } });
    expect((await w2.status()).offset).toBe(half);
    expect((await w2.status()).total).toBe(data.byteLength);
    expect(w2.digest()).toBe(digestOf(data.subarray(0, half)));
    expect(await readdir(join(root, "blobs"))).toEqual([]);
    let walked = 0;
    await reopened.walk(ctx, () => void walked++);
    expect(walked).toBe(0);
    await w2.write(data.subarray(half));
    await w2.commit(data.byteLength, digest);
    const ra = await reopened.readerAt(ctx, { digest });
    expect(ra.size).toBe(data.byteLength);
    expect(Buffer.from(await ra.readAt(0, data.byteLength)).equals(data)).toBe(true);
    await ra.close();
  });

  it("resumes after a crash that left a torn write and a wrong digest never commits", async () => {
    const w = await store.writer(ctx, { ref: "torn" });
    await w.write(Buffer.from("abcdef"));
    const reopened = createLocalStore({ root });
    const w2 = await reopened.writer(ctx, { ref: "torn" });
    await w2.write(Buffer.from("ghi"));
    await expect(w2.commit(9, digestOf("abcdefghX"))).rejects.toThrow(/unexpected commit digest/);
    expect(await readdir(join(root, "blobs"))).toEqual([]);
    await w2.commit(9, digestOf("abcdefghi"));
    expect((await reopened.info(ctx, digestOf("abcdefghi"))).size).toBe(9);
  });

  it("keeps the blob open for a reader: no re-open per read", async () => {
    const data = randomBytes(100_000);
    const digest = digestOf(data);
    const w = await store.writer(ctx, { ref: "open" });
    await w.write(data);
    await w.commit(data.byteLength, digest);
    const ra = await store.readerAt(ctx, { digest });
    await unlink(join(root, "blobs", "sha256", digest.slice(7)));
    expect(Buffer.from(await ra.readAt(50_000, 10)).equals(data.subarray(50_000, 50_010))).toBe(true);
    await ra.close();
    await expect(ra.readAt(0, 1)).rejects.toThrow(/closed/);
  });

  it("expires abandoned ingests but not locked ones", async () => {
    const a = await store.writer(ctx, { ref: "abandoned" });
    await a.write(Buffer.from("old"));
    await a.close();
    const b = await store.writer(ctx, { ref: "busy" });
    await b.write(Buffer.from("busy"));
    expect(await store.expireIngests(new Date(Date.now() - 60_000))).toEqual([]);
    expect(await store.expireIngests(new Date(Date.now() + 60_000))).toEqual(["abandoned"]);
    expect((await store.listStatuses(ctx)).map((s) => s.ref)).toEqual(["busy"]);
    await b.close();
  });

  it("aborting an active ingest ends its writer and frees the ref", async () => {
    const w = await store.writer(ctx, { ref: "abort-me" });
    await w.write(Buffer.from("abc"));
    await store.abort(ctx, "abort-me");
    const err = await w.write(Buffer.from("d")).catch((e: unknown) => e);
    expect(isNotFound(err)).toBe(true);
    const again = await store.writer(ctx, { ref: "abort-me" });
    expect((await again.status()).offset).toBe(0);
    await again.close();
  });

  it("reports the expected digest in statuses", async () => {
    const digest = digestOf("expected");
    const w = await store.writer(ctx, { ref: "exp", desc: { digest, size: 8 } });
    expect((await store.status(ctx, "exp")).expected).toBe(digest);
    await w.close();
    expect((await store.listStatuses(ctx))[0]).toMatchObject({ ref: "exp", expected: digest, total: 8, offset: 0 });
  });

  it.runIf(process.env.BERTH_CONTENT_PERF === "1")(
    "ingests 1 GiB at ≥ 500 MiB/s",
    async () => {
      const chunk = randomBytes(16 << 20);
      const total = 1 << 30;
      const w = await store.writer(ctx, { ref: "perf", desc: { size: total } });
      const start = performance.now();
      for (let off = 0; off < total; off += chunk.byteLength) await w.write(chunk);
      await w.commit(total, undefined);
      const seconds = (performance.now() - start) / 1000;
      const rate = 1024 / seconds;
      process.stdout.write(`local ingest 1 GiB: ${seconds.toFixed(2)} s, ${rate.toFixed(0)} MiB/s\n`);
      expect(rate).toBeGreaterThanOrEqual(500);
      const digests: string[] = [];
      await store.walk(ctx, (i) => void digests.push(i.digest));
      expect(digests.length).toBe(1);
    },
    120_000,
  );
});

import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isNotFound } from "@berth/errdefs";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Ctx } from "../src/content.js";
import { type LocalContentStore, createLocalStore } from "../src/local/index.js";
import { BACKGROUND_SYNC_BYTES } from "../src/local/writer.js";

const ctx: Ctx = { namespace: "default" };
const digestOf = (b: Uint8Array) => `sha256:${createHash("sha256").update(b).digest("hex")}`;

async function put(store: LocalContentStore, ref: string, data: Uint8Array, chunk = data.length): Promise<string> {
  const w = await store.writer(ctx, { ref });
  for (let off = 0; off < data.length; off += chunk) await w.write(data.subarray(off, off + chunk));
  const digest = digestOf(data);
  await w.commit(data.length, digest);
  return digest;
}

async function readAll(store: LocalContentStore, digest: string): Promise<Buffer> {
  const r = await store.readerAt(ctx, { digest });
  try {
    return Buffer.from(await r.readAt(0, r.size));
  } finally {
    await r.close();
  }
}

describe("local store: shared open blobs and background syncs", () => {
  let root: string;
  let store: LocalContentStore;

  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), "berth-content-open-"));
    store = createLocalStore({ root });
  });
  afterEach(async () => {
    await store.close();
    await rm(root, { recursive: true, force: true });
  });

  it("serves many readers of one blob, and a delete makes it NotFound at once", async () => {
    const data = randomBytes(100_000);
    const digest = await put(store, "a", data);
    const readers = await Promise.all([1, 2, 3].map(() => store.readerAt(ctx, { digest })));
    await readers[0]?.close();
    expect(Buffer.from((await readers[1]?.readAt(10, 20)) ?? []).equals(data.subarray(10, 30))).toBe(true);
    expect((await readAll(store, digest)).equals(data)).toBe(true);
    await store.delete(ctx, digest);
    // a reader opened before the delete keeps its bytes, as with a file opened before an unlink
    expect(Buffer.from((await readers[2]?.readAt(0, 5)) ?? []).equals(data.subarray(0, 5))).toBe(true);
    await Promise.all(readers.slice(1).map((r) => r.close()));
    await expect(store.readerAt(ctx, { digest })).rejects.toSatisfy(isNotFound);
    // written again: read afresh
    await put(store, "b", data);
    expect((await readAll(store, digest)).equals(data)).toBe(true);
  });

  it("commits ingests larger than the background sync step", async () => {
    const data = randomBytes(BACKGROUND_SYNC_BYTES * 2 + 4096);
    const digest = await put(store, "big", data, 1 << 20);
    const r = await store.readerAt(ctx, { digest });
    expect(r.size).toBe(data.length);
    await r.close();
    expect((await store.info(ctx, digest)).size).toBe(data.length);
  });
});

import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ContentStore } from "@berth/content-store";
import { createLocalStore } from "@berth/content-store/local";
import { digestOf } from "@berth/oci-spec";
import { type MetadataDb, type NamespacedContentOptions, openMetadataDb } from "../src/index.js";

export interface Fixture {
  readonly db: MetadataDb;
  readonly cs: ContentStore;
  readonly root: string;
  /** Whether the backend still has the blob file. */
  onDisk(digest: string): boolean;
  dispose(): Promise<void>;
}

export async function fixture(options?: NamespacedContentOptions): Promise<Fixture> {
  const dir = await mkdtemp(join(tmpdir(), "berth-metadata-"));
  const root = join(dir, "content");
  const backend = createLocalStore({ root });
  const db = openMetadataDb(join(dir, "meta"));
  const cs = db.attachContent(backend, options);
  return {
    db,
    cs,
    root,
    onDisk: (digest) => existsSync(join(root, "blobs", ...digest.split(":"))),
    async dispose() {
      await backend.close();
      db.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export interface PutOptions {
  readonly labels?: Record<string, string>;
  readonly lease?: string;
  readonly ref?: string;
}

/** Writes and commits a blob in a namespace; returns its digest. */
export async function put(
  cs: ContentStore,
  namespace: string,
  data: string,
  options: PutOptions = {},
): Promise<string> {
  const bytes = Buffer.from(data);
  const digest = digestOf(bytes);
  const ctx = options.lease === undefined ? { namespace } : { namespace, lease: options.lease };
  const w = await cs.writer(ctx, {
    ref: options.ref ?? `ref-${digest.slice(7, 19)}`,
    desc: { digest, size: bytes.length },
  });
  try {
    if ((await w.status()).offset === 0) await w.write(bytes);
    await w.commit(bytes.length, digest, options.labels ? { labels: options.labels } : undefined);
  } finally {
    await w.close();
  }
  return digest;
}

export async function catchErr(fn: () => unknown): Promise<unknown> {
  try {
    await fn();
  } catch (err) {
    return err;
  }
  throw new Error("expected an error");
}

export async function readAll(cs: ContentStore, namespace: string, digest: string): Promise<string> {
  const r = await cs.readerAt({ namespace }, { digest });
  try {
    return Buffer.from(await r.readAt(0, r.size)).toString();
  } finally {
    await r.close();
  }
}

import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import type { ContentStore, Ctx } from "@berth/content-store";
import { type LocalContentStore, createLocalStore } from "@berth/content-store/local";
import { type Descriptor, digestOf } from "@berth/oci-spec";
import tar from "tar-stream";

export const ctx: Ctx = { namespace: "default" };

export interface TempStore {
  readonly dir: string;
  readonly store: LocalContentStore;
  cleanup(): Promise<void>;
}

export async function tempStore(): Promise<TempStore> {
  const dir = await mkdtemp(join(tmpdir(), "berth-images-"));
  const store = createLocalStore({ root: join(dir, "content") });
  return {
    dir,
    store,
    cleanup: async () => {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export async function put(store: ContentStore, data: Uint8Array | string, mediaType: string): Promise<Descriptor> {
  const bytes = typeof data === "string" ? Buffer.from(data) : data;
  const digest = digestOf(bytes);
  try {
    const w = await store.writer(ctx, { ref: `test-${digest}`, desc: { digest, size: bytes.byteLength } });
    await w.write(bytes);
    await w.commit(bytes.byteLength, digest);
  } catch (err) {
    if (!(err instanceof Error && /already exists/.test(err.message))) throw err;
  }
  return { mediaType, digest, size: bytes.byteLength };
}

export type TarInput = {
  name: string;
  data?: Uint8Array | string;
  type?: "file" | "directory" | "symlink";
  linkname?: string;
};

/** Builds a tar in memory (tests only). */
export async function makeTar(entries: readonly TarInput[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const done = (async () => {
    for await (const c of pack) chunks.push(c as Buffer);
  })();
  for (const e of entries) {
    await new Promise<void>((resolve, reject) => {
      const cb = (err?: Error | null) => (err ? reject(err) : resolve());
      if (e.type === "directory" || e.type === "symlink") {
        pack.entry({ name: e.name, type: e.type, linkname: e.linkname }, cb).end(undefined);
      } else {
        const data = typeof e.data === "string" ? Buffer.from(e.data) : Buffer.from(e.data ?? new Uint8Array());
        pack.entry({ name: e.name, size: data.byteLength }, data, cb);
      }
    });
  }
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

/** A tiny layer tar with one file. */
export async function layerTar(file: string, content: string): Promise<Buffer> {
  return makeTar([{ name: file, data: content }]);
}

export interface BuiltImage {
  readonly config: Buffer;
  readonly layers: Buffer[];
  readonly diffIDs: string[];
}

export async function buildImage(arch: string, files: string[], variant?: string, gzip = true): Promise<BuiltImage> {
  const raw = await Promise.all(files.map((f, i) => layerTar(`${f}.txt`, `${arch}-${i}-${f}`)));
  const diffIDs = raw.map((r) => digestOf(r));
  const config = Buffer.from(
    JSON.stringify({
      architecture: arch,
      os: "linux",
      ...(variant ? { variant } : {}),
      config: { Cmd: ["/bin/sh"] },
      rootfs: { type: "layers", diff_ids: diffIDs },
    }),
  );
  return { config, layers: gzip ? raw.map((r) => gzipSync(r)) : raw, diffIDs };
}

export function chunked(buf: Buffer, size = 997): AsyncIterable<Uint8Array> {
  return (async function* () {
    for (let i = 0; i < buf.byteLength; i += size) yield buf.subarray(i, i + size);
  })();
}

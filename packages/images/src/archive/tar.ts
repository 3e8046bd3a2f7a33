// Streaming tar plumbing over tar-stream: reading entries from a byte stream (gzip detected), writing entries
// to a Writable with backpressure. Nothing here buffers a whole archive.
import { PassThrough, Readable, type Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createGunzip } from "node:zlib";
import tar from "tar-stream";

export type ByteSource = AsyncIterable<Uint8Array> | Readable;

async function* prepend(first: Uint8Array, it: AsyncIterator<Uint8Array>): AsyncGenerator<Uint8Array> {
  yield first;
  for (;;) {
    const r = await it.next();
    if (r.done) return;
    yield r.value;
  }
}

/** The bytes of the source, gunzipped when they start with the gzip magic. */
export async function* maybeGunzip(source: ByteSource): AsyncGenerator<Uint8Array> {
  const it = source[Symbol.asyncIterator]() as AsyncIterator<Uint8Array>;
  let first: Uint8Array | undefined;
  for (;;) {
    const r = await it.next();
    if (r.done) return;
    if (r.value.byteLength > 0) {
      first = r.value;
      break;
    }
  }
  if (first.byteLength >= 2 && first[0] === 0x1f && first[1] === 0x8b) {
    const out = new PassThrough();
    const done = pipeline(Readable.from(prepend(first, it)), createGunzip(), out);
    done.catch(() => {}); // the error reaches the consumer through `out`
    yield* out as AsyncIterable<Uint8Array>;
    await done;
    return;
  }
  yield* prepend(first, it);
}

export interface TarEntry {
  readonly header: tar.Header;
  /** The entry's data; must be consumed (or drained) before the next entry. */
  readonly body: AsyncIterable<Uint8Array>;
}

function waitWritable(stream: tar.Extract): Promise<void> {
  return new Promise((resolve) => {
    const s = stream as unknown as { destroyed?: boolean; destroying?: boolean };
    if (s.destroyed || s.destroying) return resolve();
    const done = () => {
      stream.off("drain", done);
      stream.off("close", done);
      resolve();
    };
    stream.on("drain", done);
    stream.on("close", done);
  });
}

/**
 * The entries of a tar stream, in order. A truncated archive fails with the extractor's error; stopping the
 * iteration early stops reading the source.
 */
export async function* readTar(source: AsyncIterable<Uint8Array>): AsyncGenerator<TarEntry> {
  const extract = tar.extract();
  let stopped = false;
  const feeding = (async () => {
    try {
      for await (const chunk of source) {
        if (stopped) return;
        if (!extract.write(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength))) {
          await waitWritable(extract);
        }
      }
      if (!stopped) extract.end(undefined);
    } catch (err) {
      extract.destroy(err as Error);
    }
  })();
  try {
    for await (const entry of extract) {
      yield { header: entry.header, body: entry as AsyncIterable<Uint8Array> };
      // Drain whatever the consumer left unread.
      for await (const _ of entry) {
        // discard
      }
    }
  } finally {
    stopped = true;
    extract.destroy();
    await feeding;
  }
}

/** Reads a whole entry into memory, failing (via `tooLarge`) beyond `max` bytes. */
export async function readAll(body: AsyncIterable<Uint8Array>, max: number, tooLarge: () => Error): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  let n = 0;
  for await (const chunk of body) {
    n += chunk.byteLength;
    if (n > max) throw tooLarge();
    parts.push(chunk);
  }
  return Buffer.concat(parts, n);
}

export interface TarRecord {
  readonly name: string;
  readonly mode: number;
  readonly type: "file" | "directory";
  readonly size: number;
  /** Produces exactly `size` bytes (files only). */
  readonly data?: () => AsyncIterable<Uint8Array> | Uint8Array;
}

async function writeEntry(pack: tar.Pack, record: TarRecord): Promise<void> {
  const header: Partial<tar.Header> & { name: string } = {
    name: record.name,
    mode: record.mode,
    type: record.type,
    size: record.type === "file" ? record.size : 0,
    mtime: new Date(0),
  };
  let settle!: (err?: Error | null) => void;
  const finish = new Promise<void>((resolve, reject) => {
    settle = (err) => (err ? reject(err) : resolve());
  });
  const entry = pack.entry(header, (err) => settle(err));
  if (record.data === undefined) {
    entry.end(undefined);
    return finish;
  }
  const data = record.data();
  const chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array> = data instanceof Uint8Array ? [data] : data;
  let written = 0;
  for await (const chunk of chunks) {
    written += chunk.byteLength;
    if (written > record.size) break;
    if (!entry.write(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength))) {
      await new Promise<void>((resolve) => {
        const done = () => {
          entry.off("drain", done);
          entry.off("close", done);
          resolve();
        };
        entry.on("drain", done);
        entry.on("close", done);
      });
    }
  }
  if (written !== record.size) {
    const err = new Error(`unexpected copy size for ${record.name}: ${written} bytes, want ${record.size}`);
    entry.destroy(err);
    throw err;
  }
  entry.end(undefined);
  return finish;
}

/**
 * Writes the records, sorted by name with duplicates dropped (as containerd's exporter does), as a tar stream
 * into `out`. Resolves when `out` has finished.
 */
export async function writeTar(records: readonly TarRecord[], out: Writable): Promise<void> {
  const sorted = [...records].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const pack = tar.pack();
  async function* drain(): AsyncGenerator<Uint8Array> {
    for await (const chunk of pack) yield chunk as Uint8Array;
  }
  const piping = pipeline(Readable.from(drain()), out);
  let failed: unknown;
  piping.catch((err) => {
    failed = err;
    pack.destroy(err as Error);
  });
  try {
    let last: string | undefined;
    for (const record of sorted) {
      if (failed !== undefined) break;
      if (record.name === last) continue;
      last = record.name;
      await writeEntry(pack, record);
    }
    pack.finalize();
  } catch (err) {
    pack.destroy(err as Error);
    await piping.catch(() => {});
    throw err;
  }
  await piping;
}

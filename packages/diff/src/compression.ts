// Layer decompression: gzip (zlib), zstd (zlib where Node has it, else the zstd binary) and plain tar, chosen by
// magic bytes as containerd's compression.DecompressStream does. Media types are checked to be layer types.
import { spawn } from "node:child_process";
import { Readable } from "node:stream";
import zlib from "node:zlib";
import { DataLossError, InvalidArgumentError, NotImplementedError } from "@berth/errdefs";

export type Compression = "gzip" | "zstd" | "none";

const GZIP_MAGIC = [0x1f, 0x8b, 0x08];
const ZSTD_MAGIC = [0x28, 0xb5, 0x2f, 0xfd];

/** Compression named by a layer media type (OCI and Docker); throws NotImplemented for anything else. */
export function compressionOfMediaType(mediaType: string): Compression {
  const mt = mediaType.trim().toLowerCase();
  const layer =
    mt.startsWith("application/vnd.oci.image.layer.") || mt.startsWith("application/vnd.docker.image.rootfs.");
  if (layer) {
    if (mt.endsWith("+gzip") || mt.endsWith(".tar.gzip")) return "gzip";
    if (mt.endsWith("+zstd") || mt.endsWith(".tar.zstd")) return "zstd";
    if (mt.endsWith(".tar") || mt.endsWith("tar")) return "none";
  }
  throw new NotImplementedError(`layer media type ${JSON.stringify(mediaType)}: unsupported`);
}

/** Compression told by the first bytes of a stream. */
export function detectCompression(head: Uint8Array): Compression {
  const starts = (m: number[]) => head.length >= m.length && m.every((b, i) => head[i] === b);
  if (starts(GZIP_MAGIC)) return "gzip";
  if (starts(ZSTD_MAGIC)) return "zstd";
  return "none";
}

interface Peeked {
  head: Buffer;
  rest: AsyncIterator<Uint8Array>;
}

async function peek(source: AsyncIterable<Uint8Array>, n: number): Promise<Peeked> {
  const it = source[Symbol.asyncIterator]();
  const parts: Buffer[] = [];
  let got = 0;
  while (got < n) {
    const r = await it.next();
    if (r.done) break;
    const b = Buffer.from(r.value.buffer, r.value.byteOffset, r.value.length);
    parts.push(b);
    got += b.length;
  }
  return { head: Buffer.concat(parts), rest: it };
}

async function* replay(p: Peeked): AsyncGenerator<Buffer> {
  let done = false;
  try {
    if (p.head.length) yield p.head;
    for (;;) {
      const r = await p.rest.next();
      if (r.done) {
        done = true;
        return;
      }
      yield Buffer.from(r.value.buffer, r.value.byteOffset, r.value.length);
    }
  } finally {
    // stopped early (an error, a cap, an abort): let the source close (a file stream releases its fd)
    if (!done) await p.rest.return?.();
  }
}

function nodeHasZstd(): boolean {
  return typeof (zlib as unknown as { createZstdDecompress?: unknown }).createZstdDecompress === "function";
}

function mapZlibError(err: unknown, kind: Compression): Error {
  const e = err as NodeJS.ErrnoException;
  if (e?.code === "Z_BUF_ERROR" || /unexpected end of file/i.test(e?.message ?? "")) {
    return new DataLossError(`layer stream truncated: ${kind} stream ended early`, { cause: err });
  }
  if (typeof e?.code === "string" && e.code.startsWith("Z_")) {
    return new DataLossError(`layer stream corrupt: ${kind}: ${e.message}`, { cause: err });
  }
  return err instanceof Error ? err : new Error(String(err));
}

/** Runs a byte stream through a zlib transform, mapping zlib failures to DataLoss. */
export async function* throughTransform(
  input: AsyncIterable<Buffer>,
  transform: NodeJS.ReadWriteStream & { destroy(err?: Error): void },
  kind: Compression,
): AsyncGenerator<Buffer> {
  const src = Readable.from(input, { objectMode: false });
  let srcError: unknown;
  src.on("error", (err) => {
    srcError = err;
    transform.destroy(err);
  });
  // When the consumer stops early, the async iterator destroys `transform` with an AbortError that nobody else
  // listens for; real failures still reach the loop below through the iterator.
  transform.on("error", () => {});
  src.pipe(transform);
  try {
    for await (const chunk of transform as AsyncIterable<Buffer>) yield chunk;
  } catch (err) {
    throw srcError ?? mapZlibError(err, kind);
  } finally {
    src.destroy();
    transform.destroy();
  }
}

let zstdBinary: Promise<boolean> | undefined;

/** Whether a `zstd` binary runs here (checked once). */
export function zstdBinaryAvailable(): Promise<boolean> {
  zstdBinary ??= new Promise((resolve) => {
    const p = spawn("zstd", ["--version"], { stdio: "ignore" });
    p.on("error", () => resolve(false));
    p.on("exit", (code) => resolve(code === 0));
  });
  return zstdBinary;
}

async function* throughZstdBinary(input: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  const child = spawn("zstd", ["-dc", "-q"], { stdio: ["pipe", "pipe", "pipe"] });
  const exited = new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)));
  let stderr = "";
  child.stderr.on("data", (d: Buffer) => {
    if (stderr.length < 4096) stderr += d.toString();
  });
  let srcError: unknown;
  const src = Readable.from(input, { objectMode: false });
  src.on("error", (err) => {
    srcError = err;
    child.kill();
  });
  child.stdin.on("error", () => {
    // EPIPE when zstd exits early; its exit status tells why
  });
  // an early stop destroys stdout with an AbortError nobody else listens for
  child.stdout.on("error", () => {});
  src.pipe(child.stdin);
  let done = false;
  try {
    for await (const chunk of child.stdout as AsyncIterable<Buffer>) yield chunk;
    const code = await exited;
    if (srcError) throw srcError;
    if (code !== 0) {
      const msg = stderr.trim().replace(/\s+/g, " ");
      if (/truncat|unexpected end|incomplete/i.test(msg)) {
        throw new DataLossError(`layer stream truncated: zstd: ${msg}`);
      }
      throw new DataLossError(`layer stream corrupt: zstd exited ${code}: ${msg}`);
    }
    done = true;
  } finally {
    src.destroy();
    if (!done) child.kill();
  }
}

export interface DecompressResult {
  compression: Compression;
  stream: AsyncIterable<Buffer>;
}

/** Wraps a (possibly compressed) layer stream into the uncompressed tar stream. */
export async function decompress(source: AsyncIterable<Uint8Array>, force?: Compression): Promise<DecompressResult> {
  const peeked = await peek(source, 8);
  const compression = force ?? detectCompression(peeked.head);
  const input = replay(peeked);
  switch (compression) {
    case "none":
      return { compression, stream: input };
    case "gzip": {
      // larger inflate chunks, and a read-ahead so inflating (on the thread pool) overlaps the file writes
      const gunzip = zlib.createGunzip({ chunkSize: 1 << 20, readableHighWaterMark: 4 << 20 } as zlib.ZlibOptions);
      return { compression, stream: throughTransform(input, gunzip, "gzip") };
    }
    case "zstd": {
      if (nodeHasZstd()) {
        const z = (zlib as unknown as { createZstdDecompress(): zlib.Gunzip }).createZstdDecompress();
        return { compression, stream: throughTransform(input, z, "zstd") };
      }
      if (await zstdBinaryAvailable()) return { compression, stream: throughZstdBinary(input) };
      await peeked.rest.return?.();
      throw new NotImplementedError(
        "zstd layer: no zstd decompressor here (needs Node >= 22.15 zlib zstd or the zstd binary on PATH)",
      );
    }
    default:
      throw new InvalidArgumentError(`unknown compression ${JSON.stringify(compression)}`);
  }
}

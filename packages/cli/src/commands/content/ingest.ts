/**
 * The client side of Content.Write (containerd's `content.WriteBlob` over the proxy writer): STAT to open or
 * resume the ingest, WRITE chunks of up to 1 MiB at the running offset, COMMIT with size, digest and labels.
 * Every request gets exactly one response, in order; WRITEs are pipelined (a few in flight) so that the
 * round trip of one chunk overlaps the transfer of the next.
 */
import { isAlreadyExists, isUnavailable } from "@berth/errdefs";
import { fromConnectError } from "@berth/errdefs/connect";
import type { Content, WriteContentResponse } from "@berth/api/services/content/v1";
import type { CallOptions, Client } from "@connectrpc/connect";
import { directStreamsOf } from "../../connection.js";
import { CliError, dialError, errorMessage } from "../../errors.js";
import { openDirectWrite, type WriteChannel, type WriteInit } from "../../fast-write.js";
import type { ByteSource } from "../../input.js";

/** The size of one WRITE (containerd's copy buffer). */
export const WRITE_CHUNK_BYTES = 1 << 20;
/** WRITE requests sent ahead of their responses. */
export const WRITE_WINDOW = 4;

// WriteAction values (containerd.services.content.v1.WriteAction), without loading the descriptors eagerly
const STAT = 0;
const WRITE = 1;
const COMMIT = 2;

export interface IngestProgress {
  /** The ingest is open at `offset` (non-zero when resumed); `total` is the expected size, when known. */
  start(offset: number, total: number | undefined): void;
  /** The daemon has acknowledged everything up to `offset`. */
  update(offset: number): void;
  stop(): void;
}

export interface IngestOptions {
  readonly ref: string;
  /** 0 = unknown. */
  readonly expectedSize: number;
  /** "" = unknown. */
  readonly expectedDigest: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly source: ByteSource;
  readonly progress?: IngestProgress;
  /** Options for each call (deadline, lease header). */
  readonly callOptions: () => CallOptions;
  /** Called before each retry of a locked ref (tests shorten it). */
  readonly sleep?: (ms: number) => Promise<void>;
}

export interface IngestResult {
  /** True when the daemon already had the content (AlreadyExists): nothing was read or written. */
  readonly alreadyExists: boolean;
  readonly digest: string | undefined;
  readonly size: number;
}

/** An async iterable the caller pushes requests into: the request side of the bidi stream. */
class RequestQueue<T> implements AsyncIterable<T> {
  readonly #items: T[] = [];
  #waiting: ((r: IteratorResult<T>) => void) | undefined;
  #ended = false;

  push(item: T): void {
    const waiting = this.#waiting;
    if (waiting) {
      this.#waiting = undefined;
      waiting({ value: item, done: false });
    } else this.#items.push(item);
  }

  end(): void {
    this.#ended = true;
    const waiting = this.#waiting;
    this.#waiting = undefined;
    waiting?.({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    return {
      next: () => {
        const item = this.#items.shift();
        if (item !== undefined) return Promise.resolve({ value: item, done: false });
        if (this.#ended) return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve) => {
          this.#waiting = resolve;
        });
      },
      return: async () => {
        this.#ended = true;
        return { value: undefined, done: true };
      },
      throw: async (err: unknown) => {
        this.#ended = true;
        throw err;
      },
    };
  }
}

/** One Write stream through the connect client: send requests, receive their responses in order. */
class WriteStream implements WriteChannel {
  readonly #requests = new RequestQueue<WriteInit>();
  readonly #abort = new AbortController();
  readonly #responses: AsyncIterator<WriteContentResponse>;

  constructor(client: Client<typeof Content>, options: CallOptions) {
    const signal = options.signal ? AbortSignal.any([options.signal, this.#abort.signal]) : this.#abort.signal;
    this.#responses = client
      .write(this.#requests as AsyncIterable<WriteInit>, { ...options, signal })
      [Symbol.asyncIterator]();
  }

  async send(req: WriteInit): Promise<void> {
    this.#requests.push(req);
  }

  async recv(): Promise<WriteContentResponse> {
    const next = await this.#responses.next();
    if (next.done) throw new CliError("write stream ended without a response");
    return next.value;
  }

  /** Half-closes and waits for the daemon to end the stream. */
  async close(): Promise<void> {
    this.#requests.end();
    try {
      while (!(await this.#responses.next()).done) {
        // no responses are expected after the last one
      }
    } catch {
      // the stream's result after a finished exchange does not change the outcome
    }
  }

  abort(): void {
    this.#requests.end();
    this.#abort.abort();
  }
}

/**
 * Opens a Write stream: framed directly on the connection's HTTP/2 session when the client was made over one
 * (no copies of the 1 MiB payloads), through the connect client otherwise (in-memory transports, `--debug`).
 */
async function openWriteChannel(client: Client<typeof Content>, options: CallOptions): Promise<WriteChannel> {
  const direct = directStreamsOf(client);
  return direct !== undefined ? openDirectWrite(direct, options) : new WriteStream(client, options);
}

/** Sends one request and waits for its response. */
async function call(stream: WriteChannel, req: WriteInit): Promise<WriteContentResponse> {
  await stream.send(req);
  return stream.recv();
}

const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * containerd's `content.OpenWriter`: STAT, retrying with a growing random backoff while another writer holds the
 * ref (Unavailable). A refused connection is Unavailable too, but is not retried.
 */
async function openWriter(
  client: Client<typeof Content>,
  opts: IngestOptions,
): Promise<{ stream: WriteChannel; stat: WriteContentResponse } | undefined> {
  let retry = 16;
  for (;;) {
    const stream = await openWriteChannel(client, opts.callOptions());
    try {
      const stat = await call(stream, {
        action: STAT,
        ref: opts.ref,
        total: BigInt(opts.expectedSize),
        expected: opts.expectedDigest,
      });
      return { stream, stat };
    } catch (err) {
      stream.abort();
      const typed = fromConnectError(err);
      if (isAlreadyExists(typed)) return undefined;
      if (!isUnavailable(typed) || dialError(err) !== undefined) {
        throw new CliError(`failed to open writer: ${errorMessage(err)}`);
      }
      const timeoutMs = opts.callOptions().timeoutMs;
      if (timeoutMs !== undefined && timeoutMs <= 1) throw err;
      await (opts.sleep ?? defaultSleep)(Math.floor(Math.random() * retry));
      if (retry < 2048) retry <<= 1;
    }
  }
}

/** Moves the source to the ingest's offset: a seek when possible, else reading and dropping the bytes. */
async function skipTo(source: ByteSource, offset: number, ref: string): Promise<void> {
  if (source.seekable) {
    await source.seek(offset);
    return;
  }
  let left = offset;
  while (left > 0) {
    const chunk = await source.read(Math.min(left, WRITE_CHUNK_BYTES));
    if (chunk.length === 0) throw new CliError(`unable to resume write to ${ref}: failed to discard to offset`);
    left -= chunk.length;
  }
}

/** Writes `opts.source` into the content store under `opts.ref` and commits it. */
export async function ingest(client: Client<typeof Content>, opts: IngestOptions): Promise<IngestResult> {
  const opened = await openWriter(client, opts);
  if (opened === undefined) return { alreadyExists: true, digest: opts.expectedDigest || undefined, size: 0 };
  const { stream, stat } = opened;
  const size = opts.expectedSize;
  let committed = false;
  try {
    const start = Number(stat.offset);
    const total = size > 0 ? size : stat.total > 0n ? Number(stat.total) : opts.source.size;
    opts.progress?.start(start, total);
    if (start > 0) await skipTo(opts.source, start, opts.ref);

    // WRITE: the offsets the daemon must report after each request in flight, with the buffer each one was
    // read into; a buffer is reused once its WRITE is acknowledged (the bytes have been sent by then).
    let offset = start;
    // the daemon's running digest after the last write: names the blob when a commit finds it already there
    let written = "";
    const inFlight: { offset: number; buffer: Buffer }[] = [];
    const free: Buffer[] = [];
    const acknowledge = async () => {
      const { offset: want, buffer } = inFlight.shift() as { offset: number; buffer: Buffer };
      const res = await stream.recv();
      free.push(buffer);
      written = res.digest;
      if (Number(res.offset) !== want) {
        throw new CliError(`failed to copy: short write (offset ${res.offset}, expected ${want})`);
      }
      opts.progress?.update(want);
    };
    for (;;) {
      const buffer = free.pop() ?? Buffer.allocUnsafeSlow(WRITE_CHUNK_BYTES);
      const data = await opts.source.read(WRITE_CHUNK_BYTES, buffer);
      if (data.length === 0) break;
      await stream.send({ action: WRITE, offset: BigInt(offset), data });
      offset += data.length;
      inFlight.push({ offset, buffer });
      if (inFlight.length >= WRITE_WINDOW) await acknowledge();
    }
    while (inFlight.length > 0) await acknowledge();

    if (size !== 0 && offset - start < size - start) {
      throw new CliError("failed to read expected number of bytes: unexpected EOF");
    }

    let res: WriteContentResponse;
    try {
      res = await call(stream, {
        action: COMMIT,
        total: BigInt(size),
        offset: BigInt(offset),
        expected: opts.expectedDigest,
        labels: { ...opts.labels },
      });
    } catch (err) {
      if (isAlreadyExists(fromConnectError(err))) {
        committed = true;
        return { alreadyExists: true, digest: opts.expectedDigest || written || undefined, size: offset };
      }
      throw new CliError(`failed commit on ref ${JSON.stringify(opts.ref)}: commit failed: ${errorMessage(err)}`);
    }
    committed = true;
    if (size !== 0 && Number(res.offset) !== size) {
      throw new CliError(`failed commit on ref ${JSON.stringify(opts.ref)}: unexpected size: ${res.offset} != ${size}`);
    }
    if (opts.expectedDigest !== "" && res.digest !== opts.expectedDigest) {
      throw new CliError(
        `failed commit on ref ${JSON.stringify(opts.ref)}: unexpected digest: ${res.digest} != ${opts.expectedDigest}`,
      );
    }
    return { alreadyExists: false, digest: res.digest, size: Number(res.offset) };
  } catch (err) {
    // an error status of the stream (e.g. OutOfRange on a WRITE) surfaces from recv
    if (err instanceof CliError) throw err;
    throw new CliError(`failed to copy: ${errorMessage(err)}`);
  } finally {
    opts.progress?.stop();
    if (committed) await stream.close();
    else stream.abort();
  }
}

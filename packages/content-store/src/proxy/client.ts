import { dateFromTimestamp } from "@berth/api";
import {
  Content,
  type Info as InfoPb,
  type Status as StatusPb,
  WriteAction,
  type WriteContentRequestSchema,
  type WriteContentResponse,
} from "@berth/api/services/content/v1";
import { FailedPreconditionError, InvalidArgumentError, UnknownError } from "@berth/errdefs";
import { callTyped, fromConnectError } from "@berth/errdefs/connect";
import { LEASE_HEADER, NAMESPACE_HEADER } from "@berth/identifiers";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { type CallOptions, type Client, type Transport, createClient } from "@connectrpc/connect";
import type {
  CommitOptions,
  ContentStore,
  Ctx,
  DescriptorLike,
  Info,
  ReaderAt,
  Status,
  WalkFn,
  Writer,
  WriterOptions,
} from "../content.js";

/** Largest data chunk the client puts in one Write message (as containerd's remote writer). */
export const WRITE_CHUNK_SIZE = 1 << 20;

/** Go's zero time, what an unset timestamp reads as. */
const GO_ZERO_DATE_MS = -62135596800000;

type ContentClient = Client<typeof Content>;
type WriteRequestInit = MessageInitShape<typeof WriteContentRequestSchema>;

function dateOf(ts: Timestamp | undefined): Date {
  return dateFromTimestamp(ts) ?? new Date(GO_ZERO_DATE_MS);
}

function infoFromProto(pb: InfoPb | undefined): Info {
  if (pb === undefined) throw new UnknownError("content service answered without info");
  return {
    digest: pb.digest,
    size: Number(pb.size),
    createdAt: dateOf(pb.createdAt),
    updatedAt: dateOf(pb.updatedAt),
    labels: { ...pb.labels },
  };
}

function statusFromProto(pb: StatusPb | undefined): Status {
  if (pb === undefined) throw new UnknownError("content service answered without status");
  return {
    ref: pb.ref,
    offset: Number(pb.offset),
    total: Number(pb.total),
    expected: pb.expected,
    startedAt: dateOf(pb.startedAt),
    updatedAt: dateOf(pb.updatedAt),
  };
}

/** Per-call options: the namespace and lease of the Ctx as containerd's headers, and its signal. */
function callOptions(ctx: Ctx): CallOptions {
  const headers: Record<string, string> = {};
  if (ctx.namespace) headers[NAMESPACE_HEADER] = ctx.namespace;
  if (ctx.lease) headers[LEASE_HEADER] = ctx.lease;
  return ctx.signal === undefined ? { headers } : { headers, signal: ctx.signal };
}

async function* typedStream<T>(source: AsyncIterable<T>): AsyncIterable<T> {
  try {
    yield* source;
  } catch (err) {
    throw fromConnectError(err);
  }
}

/**
 * A ContentStore over containerd's Content gRPC service (a content store in another process, or the
 * daemon's from a client). Errors come back typed, so `isNotFound` and friends work as in-process. The Ctx's
 * namespace and lease travel as the `containerd-namespace` / `containerd-lease` headers (when set; a
 * transport interceptor may also add them).
 */
export function createContentClient(transport: Transport): ContentStore {
  const client: ContentClient = createClient(Content, transport);
  const store: ContentStore = {
    async info(ctx, digest) {
      const res = await callTyped(() => client.info({ digest }, callOptions(ctx)));
      return infoFromProto(res.info);
    },

    async update(ctx, info, fieldpaths) {
      const res = await callTyped(() =>
        client.update(
          {
            info: { digest: info.digest, labels: { ...info.labels } },
            ...(fieldpaths === undefined ? {} : { updateMask: { paths: [...fieldpaths] } }),
          },
          callOptions(ctx),
        ),
      );
      return infoFromProto(res.info);
    },

    async walk(ctx: Ctx, fn: WalkFn, filters?: readonly string[]) {
      const stream = client.list({ filters: [...(filters ?? [])] }, callOptions(ctx));
      for await (const res of typedStream(stream)) {
        for (const info of res.info) await fn(infoFromProto(info));
      }
    },

    async delete(ctx, digest) {
      await callTyped(() => client.delete({ digest }, callOptions(ctx)));
    },

    async readerAt(ctx: Ctx, desc: DescriptorLike & { digest: string }): Promise<ReaderAt> {
      const info = await store.info(ctx, desc.digest);
      return new RemoteReader(client, ctx, desc.digest, info.size);
    },

    async status(ctx, ref) {
      const res = await callTyped(() => client.status({ ref }, callOptions(ctx)));
      return statusFromProto(res.status);
    },

    async listStatuses(ctx, filters) {
      const res = await callTyped(() => client.listStatuses({ filters: [...(filters ?? [])] }, callOptions(ctx)));
      return res.statuses.map((s) => statusFromProto(s));
    },

    async abort(ctx, ref) {
      await callTyped(() => client.abort({ ref }, callOptions(ctx)));
    },

    async writer(ctx: Ctx, options: WriterOptions): Promise<Writer> {
      const total = options.desc?.size !== undefined && options.desc.size > 0 ? options.desc.size : 0;
      const expected = options.desc?.digest ?? "";
      const session = new WriteSession(client, ctx);
      await session.open(options.ref, total, expected);
      return session;
    },
  };
  return store;
}

/** Reads with one Read stream per call (the server keeps the blob open for the stream). */
class RemoteReader implements ReaderAt {
  readonly size: number;
  readonly #client: ContentClient;
  readonly #ctx: Ctx;
  readonly #digest: string;

  constructor(client: ContentClient, ctx: Ctx, digest: string, size: number) {
    this.#client = client;
    this.#ctx = ctx;
    this.#digest = digest;
    this.size = size;
  }

  async readAt(offset: number, length: number): Promise<Uint8Array> {
    if (!Number.isSafeInteger(offset) || offset < 0) throw new InvalidArgumentError(`invalid read offset ${offset}`);
    if (!Number.isSafeInteger(length) || length < 0) throw new InvalidArgumentError(`invalid read length ${length}`);
    const n = Math.max(0, Math.min(length, this.size - offset));
    if (n === 0) return new Uint8Array(0);
    const buf = Buffer.allocUnsafe(n);
    let got = 0;
    // The stream asks for exactly n bytes: read it to its end rather than break out of it. Leaving early
    // cancels the call, and a server that never sees the cancellation (the in-memory router transport) keeps
    // the Read handler, and the blob file it holds open, suspended for good.
    for await (const chunk of this.stream(offset, n)) {
      const take = Math.min(chunk.byteLength, n - got);
      if (take > 0) buf.set(take === chunk.byteLength ? chunk : chunk.subarray(0, take), got);
      got += take;
    }
    return got === n ? buf : buf.subarray(0, got);
  }

  async *stream(offset = 0, length = -1): AsyncIterable<Uint8Array> {
    if (!Number.isSafeInteger(offset) || offset < 0) throw new InvalidArgumentError(`invalid read offset ${offset}`);
    if (offset >= this.size) return;
    if (length === 0) return;
    const source = this.#client.read(
      { digest: this.#digest, offset: BigInt(offset), size: BigInt(length < 0 ? 0 : length) },
      callOptions(this.#ctx),
    );
    for await (const res of typedStream(source)) yield res.data;
  }

  async close(): Promise<void> {}
}

/** A queue the writer pushes requests into (the request side of the bidi stream). */
class RequestQueue<T> {
  #items: T[] = [];
  #waiting: ((r: IteratorResult<T>) => void) | undefined;
  #ended = false;

  push(item: T): void {
    if (this.#ended) return;
    const waiting = this.#waiting;
    if (waiting !== undefined) {
      this.#waiting = undefined;
      waiting({ value: item, done: false });
    } else {
      this.#items.push(item);
    }
  }

  end(): void {
    this.#ended = true;
    const waiting = this.#waiting;
    this.#waiting = undefined;
    waiting?.({ value: undefined, done: true });
  }

  #next(): Promise<IteratorResult<T>> {
    const item = this.#items.shift();
    if (item !== undefined) return Promise.resolve({ value: item, done: false });
    if (this.#ended) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve) => {
      this.#waiting = resolve;
    });
  }

  /** The requests as an async generator (Connect needs a full AsyncIterator, `throw` included). */
  async *drain(): AsyncGenerator<T, void, undefined> {
    try {
      for (;;) {
        const r = await this.#next();
        if (r.done) return;
        yield r.value;
      }
    } finally {
      this.end();
      this.#items = [];
    }
  }
}

/** The client side of Content.Write: STAT first, WRITE chunks of at most 1 MiB, COMMIT. */
class WriteSession implements Writer {
  ref = "";
  readonly #requests = new RequestQueue<WriteRequestInit>();
  readonly #responses: AsyncIterator<WriteContentResponse>;
  #offset = 0;
  #total = 0;
  #expected = "";
  #digest = "";
  #startedAt = new Date(GO_ZERO_DATE_MS);
  #updatedAt = new Date(GO_ZERO_DATE_MS);
  #ended: string | undefined;
  #failure: Error | undefined;
  #queue: Promise<unknown> = Promise.resolve();

  constructor(client: ContentClient, ctx: Ctx) {
    this.#responses = client.write(this.#requests.drain(), callOptions(ctx))[Symbol.asyncIterator]();
  }

  async open(ref: string, total: number, expected: string): Promise<void> {
    this.ref = ref;
    this.#total = total;
    this.#expected = expected;
    try {
      const [res] = await this.#exchange([{ action: WriteAction.STAT, ref, total: BigInt(total), expected }]);
      this.#absorb(res!);
    } catch (err) {
      await this.#finish();
      throw err;
    }
  }

  async status(): Promise<Status> {
    return this.#serial(async () => {
      const [res] = await this.#exchange([{ action: WriteAction.STAT, ref: this.ref }]);
      this.#absorb(res!);
      return {
        ref: this.ref,
        offset: this.#offset,
        total: this.#total,
        expected: this.#expected,
        startedAt: this.#startedAt,
        updatedAt: this.#updatedAt,
      };
    });
  }

  digest(): string {
    return this.#digest;
  }

  write(data: Uint8Array): Promise<number> {
    return this.#serial(async () => {
      if (data.byteLength === 0) return this.#offset;
      const requests: WriteRequestInit[] = [];
      let offset = this.#offset;
      for (let i = 0; i < data.byteLength; i += WRITE_CHUNK_SIZE) {
        const chunk = data.subarray(i, Math.min(i + WRITE_CHUNK_SIZE, data.byteLength));
        requests.push({ action: WriteAction.WRITE, ref: this.ref, offset: BigInt(offset), data: chunk });
        offset += chunk.byteLength;
      }
      // Pipelined: every chunk is sent, then the responses are read in order.
      const responses = await this.#exchange(requests);
      for (const res of responses) this.#absorb(res);
      return this.#offset;
    });
  }

  truncate(size: 0): Promise<void> {
    return this.#serial(async () => {
      if (size !== 0) throw new FailedPreconditionError(`cannot truncate ingest ${this.ref} to ${size}`);
      const [res] = await this.#exchange([{ action: WriteAction.WRITE, ref: this.ref, offset: 0n }]);
      this.#absorb(res!);
    });
  }

  commit(size: number, expected: string | undefined, options?: CommitOptions): Promise<void> {
    return this.#serial(async () => {
      const request: WriteRequestInit = {
        action: WriteAction.COMMIT,
        ref: this.ref,
        total: BigInt(size > 0 ? size : 0),
        expected: expected ?? "",
        offset: BigInt(this.#offset),
        labels: { ...(options?.labels ?? {}) },
      };
      try {
        const [res] = await this.#exchange([request]);
        this.#absorb(res!);
      } finally {
        // The server ends the stream after COMMIT, whatever the outcome.
        await this.#finish("committed");
      }
    });
  }

  close(): Promise<void> {
    return this.#serial(() => this.#finish("closed"));
  }

  #absorb(res: WriteContentResponse): void {
    this.#offset = Number(res.offset);
    if (res.total > 0n) this.#total = Number(res.total);
    this.#digest = res.digest;
    if (res.startedAt !== undefined) this.#startedAt = dateOf(res.startedAt);
    if (res.updatedAt !== undefined) this.#updatedAt = dateOf(res.updatedAt);
  }

  async #exchange(requests: WriteRequestInit[]): Promise<WriteContentResponse[]> {
    if (this.#failure !== undefined) throw this.#failure;
    if (this.#ended !== undefined) throw new FailedPreconditionError(`writer for ref ${this.ref} is ${this.#ended}`);
    for (const r of requests) this.#requests.push(r);
    const out: WriteContentResponse[] = [];
    try {
      for (let i = 0; i < requests.length; i++) {
        const next = await this.#responses.next();
        if (next.done) throw new UnknownError(`write stream for ref ${this.ref} ended early`);
        out.push(next.value);
      }
    } catch (err) {
      // A failed exchange ends the stream on the server: the writer cannot be used again.
      this.#failure = fromConnectError(err);
      this.#ended = "failed";
      this.#requests.end();
      throw this.#failure;
    }
    return out;
  }

  /** Half-closes the request side and drains the responses until the server ends the stream. */
  async #finish(reason = "closed"): Promise<void> {
    const wasEnded = this.#ended;
    if (wasEnded === undefined) this.#ended = reason;
    this.#requests.end();
    try {
      for (;;) {
        const next = await this.#responses.next();
        if (next.done) break;
      }
    } catch (err) {
      if (wasEnded === undefined && reason !== "committed") throw fromConnectError(err);
    }
  }

  #serial<T>(op: () => Promise<T>): Promise<T> {
    const next = this.#queue.then(op, op);
    this.#queue = next.catch(() => {});
    return next;
  }
}

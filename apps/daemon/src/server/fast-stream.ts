import type * as http2 from "node:http2";
import {
  CanceledError,
  DeadlineExceededError,
  GrpcCode,
  InvalidArgumentError,
  NotImplementedError,
  ResourceExhaustedError,
  errorKind,
  grpcCodeName,
  grpcCodeOf,
} from "@berth/errdefs";
import type { Logger } from "@berth/plugin";
import { type DescMethod, type DescService, create, fromBinary, isMessage, toBinary } from "@bufbuild/protobuf";
import type { HandlerContext } from "@connectrpc/connect";
import { directHandlerContext, encodeGrpcMessage, parseTimeout, type ServiceRegistration } from "./fast-unary.js";
import type { RpcMetrics } from "./interceptors.js";

/**
 * A direct path for the content streams. connect-node reassembles each gRPC message by concatenating every
 * HTTP/2 DATA chunk (16 KiB) onto the bytes gathered so far, so a 1 MiB WRITE costs ~32 MiB of copying and as
 * many short-lived buffers; the answers of Read are copied twice more (serialize, then envelope). Here a
 * message is copied once at most (none when one chunk holds it), the `data` of a request is a view of that
 * copy, and a Read chunk goes to the socket as it came from the file.
 *
 * Only the methods in FAST_STREAM_METHODS take this path; calls with compression or another content type,
 * and every other stream, still go through connect-node. The service implementations are the same.
 */
export const FAST_STREAM_METHODS: readonly string[] = [
  "/containerd.services.content.v1.Content/Write",
  "/containerd.services.content.v1.Content/Read",
];

/** Bytes buffered from a client before its stream is paused (HTTP/2 flow control then holds the rest). */
const INPUT_HIGH_WATER = 8 << 20;
/** Bytes queued towards a client before the handler waits for them to drain. */
const OUTPUT_HIGH_WATER = 4 << 20;
/** Messages smaller than this are framed into one buffer; larger ones are written as header + body. */
const SMALL_MESSAGE = 64 << 10;
/** Request bodies at least this large are reassembled in pooled buffers (on routes that allow it). */
const POOLED_MIN_BYTES = 64 << 10;
/** Pooled buffers kept per size class. */
const POOL_PER_CLASS = 8;

/**
 * Methods whose handler is done with a request (its `data` included) once it asks for the next one, so the
 * request's buffer can be reused then. Content.Write: the service writes each chunk and waits for the write
 * before reading on, and a Writer must not keep `data` after write() settles (as Go's io.Writer must not
 * retain p). Fresh 1 MiB buffers are expensive here: page faults on first touch, then GC; reusing a few warm
 * ones makes reassembly ~50× cheaper.
 */
const RECYCLING_METHODS: ReadonlySet<string> = new Set(["/containerd.services.content.v1.Content/Write"]);

/** A few reusable buffers per power-of-two size class. */
export class BufferPool {
  readonly #free = new Map<number, Buffer[]>();

  static sizeClass(n: number): number {
    let size = POOLED_MIN_BYTES;
    while (size < n) size *= 2;
    return size;
  }

  take(n: number): Buffer {
    const size = BufferPool.sizeClass(n);
    return this.#free.get(size)?.pop() ?? Buffer.allocUnsafeSlow(size);
  }

  give(buf: Buffer): void {
    const size = buf.buffer.byteLength;
    if (buf.byteOffset !== 0 || size !== BufferPool.sizeClass(size)) return;
    let list = this.#free.get(size);
    if (list === undefined) {
      list = [];
      this.#free.set(size, list);
    }
    if (list.length < POOL_PER_CLASS) list.push(Buffer.from(buf.buffer, 0, size));
  }
}

type StreamFn = (input: unknown, ctx: HandlerContext) => unknown;
/** Encodes one response as the parts of its gRPC frame (header included), or undefined for the generic path. */
type ResponseEncoder = (message: unknown) => Uint8Array[] | undefined;

interface StreamRoute {
  readonly service: DescService;
  readonly method: DescMethod;
  readonly fn: StreamFn;
  readonly rpc: string;
  readonly encode: ResponseEncoder | undefined;
  /** Set on RECYCLING_METHODS: request buffers come from here and go back when the next request is asked for. */
  readonly pool: BufferPool | undefined;
}

export interface FastStreamOptions {
  readonly maxRecvMessageSize: number;
  readonly maxSendMessageSize: number;
  readonly log: Logger;
  readonly metrics?: RpcMetrics;
  /** The methods to serve here (default FAST_STREAM_METHODS). */
  readonly methods?: readonly string[];
}

/**
 * Splits a byte stream into gRPC length-prefixed messages. Chunks are kept as received; a message spanning
 * several chunks is copied once into a buffer of its own size.
 */
export class EnvelopeReader {
  #chunks: Buffer[] = [];
  #bytes = 0;
  /** Pooled buffers holding messages returned by next() and not yet given back (see releaseLent). */
  readonly #lent: Buffer[] = [];

  /** With a pool, large messages are reassembled in its buffers; call releaseLent() when they are done with. */
  constructor(
    private readonly maxMessageBytes: number,
    private readonly pool?: BufferPool,
  ) {}

  /** Gives the buffers of every message returned so far back to the pool. */
  releaseLent(): void {
    const pool = this.pool;
    if (pool === undefined) return;
    for (const buf of this.#lent) pool.give(buf);
    this.#lent.length = 0;
  }

  /** Bytes received and not yet returned as messages. */
  get pendingBytes(): number {
    return this.#bytes;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.#chunks.push(chunk);
    this.#bytes += chunk.length;
  }

  /** The next complete message, or undefined until more bytes arrive. */
  next(): Buffer | undefined {
    if (this.#bytes < 5) return undefined;
    const flags = this.#byteAt(0);
    const length = ((this.#byteAt(1) << 24) | (this.#byteAt(2) << 16) | (this.#byteAt(3) << 8) | this.#byteAt(4)) >>> 0;
    if ((flags & 1) !== 0) {
      throw new InvalidArgumentError("protocol error: received compressed message without grpc-encoding");
    }
    if (length > this.maxMessageBytes) {
      throw new ResourceExhaustedError(
        `grpc: received message larger than max (${length} vs. ${this.maxMessageBytes})`,
      );
    }
    if (this.#bytes < 5 + length) return undefined;
    const first = this.#chunks[0] as Buffer;
    if (first.length >= 5 + length) {
      const body = first.subarray(5, 5 + length);
      this.#drop(5 + length);
      return body;
    }
    this.#drop(5);
    let body: Buffer;
    if (this.pool !== undefined && length >= POOLED_MIN_BYTES) {
      const buf = this.pool.take(length);
      this.#lent.push(buf);
      body = buf.subarray(0, length);
    } else {
      body = Buffer.allocUnsafe(length);
    }
    let filled = 0;
    while (filled < length) {
      const chunk = this.#chunks[0] as Buffer;
      const take = Math.min(chunk.length, length - filled);
      chunk.copy(body, filled, 0, take);
      filled += take;
      this.#drop(take);
    }
    return body;
  }

  #byteAt(index: number): number {
    let i = index;
    for (const chunk of this.#chunks) {
      if (i < chunk.length) return chunk[i] as number;
      i -= chunk.length;
    }
    throw new RangeError("envelope reader: index out of range");
  }

  /** Drops n bytes from the front. */
  #drop(n: number): void {
    let left = n;
    this.#bytes -= n;
    while (left > 0) {
      const chunk = this.#chunks[0] as Buffer;
      if (chunk.length <= left) {
        this.#chunks.shift();
        left -= chunk.length;
      } else {
        this.#chunks[0] = chunk.subarray(left);
        left = 0;
      }
    }
  }
}

function frameHeader(length: number, extra = 0): Buffer {
  const header = Buffer.allocUnsafe(5 + extra);
  header[0] = 0;
  header.writeUInt32BE(length, 1);
  return header;
}

/** The gRPC frame of a serialized message: one buffer when small, else header and body apart (no copy). */
export function framedParts(bytes: Uint8Array): Uint8Array[] {
  if (bytes.length >= SMALL_MESSAGE) return [frameHeader(bytes.length), bytes];
  const frame = frameHeader(bytes.length, bytes.length);
  frame.set(bytes, 5);
  return [frame];
}

function varintLength(n: number): number {
  let len = 1;
  for (let v = n; v >= 0x80; v = Math.floor(v / 128)) len++;
  return len;
}

function putVarint(buf: Buffer, at: number, n: number): number {
  let pos = at;
  let v = n;
  while (v >= 0x80) {
    buf[pos++] = (v % 128) | 0x80;
    v = Math.floor(v / 128);
  }
  buf[pos++] = v;
  return pos;
}

/**
 * ReadContentResponse { int64 offset = 1; bytes data = 2; } framed without copying `data`: the same bytes as
 * toBinary (fields in number order, zero values left out). Anything unexpected takes the generic path.
 */
export function encodeReadContentResponse(message: unknown): Uint8Array[] | undefined {
  if (typeof message !== "object" || message === null) return undefined;
  for (const key of Object.keys(message)) {
    if (key !== "offset" && key !== "data" && key !== "$typeName") return undefined;
  }
  const { offset: rawOffset, data: rawData } = message as { offset?: unknown; data?: unknown };
  let offset = 0;
  if (rawOffset !== undefined) {
    if (typeof rawOffset !== "bigint" && typeof rawOffset !== "number") return undefined;
    offset = Number(rawOffset);
    if (!Number.isSafeInteger(offset) || offset < 0) return undefined;
  }
  if (rawData !== undefined && !(rawData instanceof Uint8Array)) return undefined;
  const data = rawData ?? new Uint8Array(0);
  const offsetBytes = offset === 0 ? 0 : 1 + varintLength(offset);
  const dataPrefix = data.length === 0 ? 0 : 1 + varintLength(data.length);
  const length = offsetBytes + dataPrefix + data.length;
  const head = frameHeader(length, offsetBytes + dataPrefix);
  let pos = 5;
  if (offsetBytes > 0) {
    head[pos++] = 0x08;
    pos = putVarint(head, pos, offset);
  }
  if (data.length === 0) return [head];
  head[pos++] = 0x12;
  putVarint(head, pos, data.length);
  if (data.length < SMALL_MESSAGE) {
    const frame = Buffer.allocUnsafe(head.length + data.length);
    head.copy(frame, 0);
    frame.set(data, head.length);
    return [frame];
  }
  return [head, data];
}

const ENCODERS: Readonly<Record<string, ResponseEncoder>> = {
  "/containerd.services.content.v1.Content/Read": encodeReadContentResponse,
};

export class FastStreamRoutes {
  readonly #routes = new Map<string, StreamRoute>();

  constructor(
    private readonly options: FastStreamOptions,
    services: readonly ServiceRegistration[],
  ) {
    this.add(services);
  }

  /** Takes the fast methods of these services (also of services loaded after start-up). */
  add(services: readonly ServiceRegistration[]): void {
    const wanted = new Set(this.options.methods ?? FAST_STREAM_METHODS);
    for (const { desc, impl } of services) {
      for (const method of desc.methods) {
        const rpc = `/${desc.typeName}/${method.name}`;
        const fn = impl[method.localName];
        if (!wanted.has(rpc) || method.methodKind === "unary" || typeof fn !== "function") continue;
        this.#routes.set(rpc, {
          service: desc,
          method,
          fn: fn.bind(impl) as StreamFn,
          rpc,
          encode: ENCODERS[rpc],
          pool: RECYCLING_METHODS.has(rpc) ? new BufferPool() : undefined,
        });
      }
    }
  }

  /** Handles the stream if it is a plain gRPC call to one of the fast methods; returns false otherwise. */
  tryHandle(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): boolean {
    const route = this.#routes.get(headers[":path"] as string);
    if (route === undefined) return false;
    const contentType = headers["content-type"];
    if (contentType !== "application/grpc" && contentType !== "application/grpc+proto") return false;
    const encoding = headers["grpc-encoding"];
    if (encoding !== undefined && encoding !== "identity") return false;
    new StreamCall(route, stream, headers, this.options).run();
    return true;
  }
}

/** One call on the fast path: the request messages in, the handler's answers out, then the status. */
class StreamCall {
  readonly #route: StreamRoute;
  readonly #stream: http2.ServerHttp2Stream;
  readonly #headers: http2.IncomingHttpHeaders;
  readonly #options: FastStreamOptions;
  readonly #reader: EnvelopeReader;
  /** Created when the handler first looks at its signal. */
  #controller: AbortController | undefined;
  #abortReason: Error | undefined;
  readonly #started: number;
  /** The client half-closed. */
  #inputEnded = false;
  /** Why no more requests can be read (a protocol error, cancel, deadline). */
  #inputError: unknown;
  #paused = false;
  #wake: (() => void) | undefined;
  #finished = false;
  #trailers: http2.OutgoingHttpHeaders = { "grpc-status": "0" };

  constructor(
    route: StreamRoute,
    stream: http2.ServerHttp2Stream,
    headers: http2.IncomingHttpHeaders,
    options: FastStreamOptions,
  ) {
    this.#route = route;
    this.#stream = stream;
    this.#headers = headers;
    this.#options = options;
    this.#reader = new EnvelopeReader(options.maxRecvMessageSize, route.pool);
    this.#started = options.metrics?.duration ? performance.now() : 0;
  }

  run(): void {
    const stream = this.#stream;
    stream.on("data", (chunk: Buffer) => {
      if (this.#finished) return;
      this.#reader.push(chunk);
      if (!this.#paused && this.#reader.pendingBytes >= INPUT_HIGH_WATER) {
        this.#paused = true;
        stream.pause();
      }
      this.#notify();
    });
    stream.on("end", () => {
      this.#inputEnded = true;
      this.#notify();
    });
    stream.on("error", () => {});
    stream.once("close", () => {
      if (!this.#finished) this.#abort(new CanceledError("context canceled"));
    });
    const timeout = parseTimeout(this.#headers["grpc-timeout"] as string | undefined);
    if (timeout !== undefined) {
      const timer = setTimeout(() => this.#abort(new DeadlineExceededError("context deadline exceeded")), timeout);
      stream.once("close", () => clearTimeout(timer));
    }
    this.#serve().then(
      () => this.#finish(),
      (err: unknown) => this.#fail(err),
    );
  }

  #abort(reason: Error): void {
    if (this.#abortReason !== undefined) return;
    this.#abortReason = reason;
    this.#inputError ??= reason;
    this.#controller?.abort(reason);
    this.#notify();
  }

  #signal(): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController();
      if (this.#abortReason !== undefined) this.#controller.abort(this.#abortReason);
    }
    return this.#controller.signal;
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  /** The next request message, or undefined once the client has half-closed. */
  async #nextRequest(): Promise<unknown> {
    // Asking for the next request means the handler is done with the previous one (on recycling routes).
    this.#reader.releaseLent();
    for (;;) {
      if (this.#inputError !== undefined) throw this.#inputError;
      let body: Buffer | undefined;
      try {
        body = this.#reader.next();
      } catch (err) {
        this.#inputError = err;
        throw err;
      }
      if (body !== undefined) {
        if (this.#paused && this.#reader.pendingBytes < INPUT_HIGH_WATER / 2) {
          this.#paused = false;
          this.#stream.resume();
        }
        try {
          return fromBinary(this.#route.method.input, body);
        } catch (err) {
          throw new InvalidArgumentError(`parse binary: ${err instanceof Error ? err.message : String(err)}`, {
            cause: err,
          });
        }
      }
      if (this.#inputEnded) {
        if (this.#reader.pendingBytes > 0) throw new InvalidArgumentError("protocol error: incomplete envelope");
        return undefined;
      }
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
      });
    }
  }

  #requests(): AsyncIterable<unknown> {
    return {
      [Symbol.asyncIterator]: () => ({
        next: async () => {
          const value = await this.#nextRequest();
          return value === undefined ? { value: undefined, done: true } : { value, done: false };
        },
        return: async () => ({ value: undefined, done: true }),
      }),
    };
  }

  async #serve(): Promise<void> {
    const { method, fn } = this.#route;
    const ctx = this.#context();
    const kind = method.methodKind;
    if (kind === "server_streaming") {
      const req = await this.#nextRequest();
      if (req === undefined) throw new NotImplementedError(`protocol error: missing input message for ${kind} method`);
      if ((await this.#nextRequest()) !== undefined) {
        throw new NotImplementedError(`protocol error: received extra input message for ${kind} method`);
      }
      await this.#sendAll(fn(req, ctx) as AsyncIterable<unknown>);
    } else if (kind === "bidi_streaming") {
      await this.#sendAll(fn(this.#requests(), ctx) as AsyncIterable<unknown>);
    } else {
      await this.#send(await fn(this.#requests(), ctx));
    }
  }

  async #sendAll(responses: AsyncIterable<unknown>): Promise<void> {
    for await (const message of responses) {
      await this.#send(message);
    }
  }

  async #send(message: unknown): Promise<void> {
    const stream = this.#stream;
    if (stream.destroyed || stream.closed) throw this.#inputError ?? new CanceledError("context canceled");
    const parts = this.#encode(message);
    if (!stream.headersSent) {
      stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
      stream.once("wantTrailers", () => stream.sendTrailers(this.#trailers));
    }
    let ok = true;
    for (const part of parts) ok = stream.write(part);
    if (!ok && stream.writableLength >= OUTPUT_HIGH_WATER) {
      await new Promise<void>((resolve) => {
        const done = () => {
          stream.off("drain", done);
          stream.off("close", done);
          resolve();
        };
        stream.on("drain", done);
        stream.on("close", done);
      });
    }
  }

  #encode(message: unknown): Uint8Array[] {
    const { method, encode } = this.#route;
    const parts = encode?.(message);
    const out =
      parts ??
      framedParts(
        toBinary(method.output, isMessage(message, method.output) ? message : create(method.output, message as never)),
      );
    let size = -5;
    for (const part of out) size += part.length;
    if (size > this.#options.maxSendMessageSize) {
      throw new ResourceExhaustedError(`grpc: trying to send message larger than max (${size})`);
    }
    return out;
  }

  #context(): HandlerContext {
    const headers = this.#headers;
    return directHandlerContext(
      this.#route.method,
      this.#route.service,
      headers,
      () => this.#signal(),
      () => parseTimeout(headers["grpc-timeout"] as string | undefined),
    );
  }

  /** Stops reading: whatever the client still sends is dropped, so flow control never stalls it. */
  #stopInput(): void {
    this.#finished = true;
    this.#reader.releaseLent();
    if (this.#paused) {
      this.#paused = false;
      this.#stream.resume();
    }
  }

  #finish(): void {
    this.#stopInput();
    this.#count(GrpcCode.OK);
    const stream = this.#stream;
    if (stream.destroyed || stream.closed) return;
    if (!stream.headersSent) {
      stream.respond({ ":status": 200, "content-type": "application/grpc", "grpc-status": "0" }, { endStream: true });
      return;
    }
    stream.end();
  }

  #fail(err: unknown): void {
    this.#stopInput();
    const { rpc } = this.#route;
    const code = grpcCodeOf(err);
    const message = err instanceof Error ? err.message : String(err);
    const kind = errorKind(err);
    if (kind === "Unknown" || kind === "Internal") this.#options.log.error({ rpc, err }, "rpc failed");
    else this.#options.log.debug({ rpc, code: kind, err: message }, "rpc failed");
    this.#count(code);
    const stream = this.#stream;
    if (stream.destroyed || stream.closed) return;
    const status = { "grpc-status": String(code), "grpc-message": encodeGrpcMessage(message) };
    if (!stream.headersSent) {
      stream.respond({ ":status": 200, "content-type": "application/grpc", ...status }, { endStream: true });
      return;
    }
    this.#trailers = status;
    stream.end();
  }

  #count(code: number): void {
    const m = this.#options.metrics;
    if (!m) return;
    const { service, method } = this.#route;
    m.handled.inc({ grpc_service: service.typeName, grpc_method: method.name, grpc_code: grpcCodeName(code) });
    if (m.duration && this.#started) {
      m.duration.observe(
        { grpc_service: service.typeName, grpc_method: method.name },
        (performance.now() - this.#started) / 1000,
      );
    }
  }
}

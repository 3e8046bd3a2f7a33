import { chmod, lstat, unlink } from "node:fs/promises";
import { createServer, type Server, type Socket } from "node:net";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { DescMessage, MessageInitShape, MessageShape } from "@bufbuild/protobuf";
import type { GenService, GenServiceMethods } from "@bufbuild/protobuf/codegenv2";
import {
  AlreadyExistsError,
  CanceledError,
  DeadlineExceededError,
  GrpcCode,
  InvalidArgumentError,
} from "@berth/errdefs";
import { socketPathOf } from "./client.js";
import { statusFromError } from "./errors.js";
import { FrameReader, type FrameSink } from "./internal/frame-reader.js";
import { FrameWriter } from "./internal/frame-writer.js";
import {
  decodeRequest,
  encodeResponseFrame,
  encodeStatus,
  HEADER_LENGTH,
  MAX_MESSAGE_LENGTH,
  MessageType,
  type WireRequest,
  type WireStatus,
} from "./internal/wire.js";
import { metadataFromEntries, type TtrpcMetadata } from "./metadata.js";

/** What a handler learns about its call. */
export interface TtrpcCallContext {
  readonly service: string;
  readonly method: string;
  /** Request metadata, e.g. `containerd-namespace-ttrpc`. */
  readonly metadata: TtrpcMetadata;
  /** Aborted when the request's `timeout_nano` expires (DeadlineExceeded) or the connection closes (Canceled). */
  readonly signal: AbortSignal;
  /** `Date.now()`-based deadline from `timeout_nano`, if the client set one. */
  readonly deadline: number | undefined;
  /** The connection the request came in on. */
  readonly socket: Socket;
}

/** A raw method handler: request payload in, response payload out; a thrown error becomes the status. */
export type TtrpcMethod = (payload: Uint8Array, ctx: TtrpcCallContext) => Promise<Uint8Array> | Uint8Array;

/** A typed service implementation, keyed by the RPCs' local (camelCase) names. */
export type TtrpcServiceImpl<S extends GenServiceMethods> = {
  [K in keyof S as S[K]["methodKind"] extends "unary" ? K : never]: (
    request: MessageShape<S[K]["input"]>,
    ctx: TtrpcCallContext,
  ) => Promise<MessageInitShape<S[K]["output"]>> | MessageInitShape<S[K]["output"]>;
};

export interface TtrpcListenOptions {
  /** File mode for the socket, e.g. 0o600. */
  readonly mode?: number;
}

export interface TtrpcServer {
  /** Registers raw handlers for a service (`containerd.task.v2.Task`) by method name (`State`). */
  register(service: string, methods: Readonly<Record<string, TtrpcMethod>>): void;
  /** Registers a protobuf-es service; RPCs left out of `impl` answer Unimplemented "method X". */
  registerService<S extends GenServiceMethods>(service: GenService<S>, impl: Partial<TtrpcServiceImpl<S>>): void;
  /** Listens on a unix socket path (a stale socket file is removed first). */
  listen(path: string, options?: TtrpcListenOptions): Promise<void>;
  /** Serves one already-connected socket. */
  serve(socket: Socket): void;
  /** Stops listening, ends every connection (aborting in-flight handlers) and removes the socket file. */
  close(): Promise<void>;
}

export function createTtrpcServer(): TtrpcServer {
  return new TtrpcServerImpl();
}

const EMPTY_METADATA: TtrpcMetadata = new Map();
const EMPTY = new Uint8Array(0);

type Services = Map<string, Map<string, TtrpcMethod>>;

class TtrpcServerImpl implements TtrpcServer {
  private readonly services: Services = new Map();
  private readonly connections = new Set<Connection>();
  private readonly listeners: Server[] = [];
  private closed = false;

  register(service: string, methods: Readonly<Record<string, TtrpcMethod>>): void {
    let table = this.services.get(service);
    if (table === undefined) {
      table = new Map();
      this.services.set(service, table);
    }
    for (const [name, fn] of Object.entries(methods)) {
      if (table.has(name)) throw new AlreadyExistsError(`ttrpc method ${service}/${name}`);
      table.set(name, fn);
    }
  }

  registerService<S extends GenServiceMethods>(service: GenService<S>, impl: Partial<TtrpcServiceImpl<S>>): void {
    const methods: Record<string, TtrpcMethod> = {};
    const handlers = impl as Record<string, ((req: unknown, ctx: TtrpcCallContext) => unknown) | undefined>;
    for (const method of service.methods) {
      const fn = handlers[method.localName];
      if (fn === undefined || method.methodKind !== "unary") continue;
      const input: DescMessage = method.input;
      const output: DescMessage = method.output;
      const encode = (res: unknown) => toBinary(output, create(output, res as MessageInitShape<DescMessage>));
      methods[method.name] = (payload, ctx) => {
        let request: unknown;
        try {
          request = fromBinary(input, payload);
        } catch (err) {
          throw new InvalidArgumentError(`unmarshal ${input.typeName}: ${(err as Error).message}`, { bare: true });
        }
        const result = fn.call(impl, request, ctx);
        return isPromiseLike(result) ? Promise.resolve(result).then(encode) : encode(result);
      };
    }
    this.register(service.typeName, methods);
  }

  async listen(address: string, options: TtrpcListenOptions = {}): Promise<void> {
    if (this.closed) throw new CanceledError("ttrpc: server closed", { bare: true });
    const path = socketPathOf(address);
    const abstract = path.startsWith("\0");
    if (!abstract) await removeStaleSocket(path);
    const server = createServer({ allowHalfOpen: false }, (socket) => this.serve(socket));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(path, () => {
        server.off("error", reject);
        server.on("error", () => {}); // accept errors must not crash the process; the listener keeps going
        resolve();
      });
    });
    if (!abstract && options.mode !== undefined) await chmod(path, options.mode);
    this.listeners.push(server);
    if (this.closed) await this.close();
  }

  serve(socket: Socket): void {
    if (this.closed) {
      socket.destroy();
      return;
    }
    const conn = new Connection(socket, this.services, () => this.connections.delete(conn));
    this.connections.add(conn);
  }

  async close(): Promise<void> {
    this.closed = true;
    const listeners = this.listeners.splice(0);
    // libuv unlinks a listening unix socket's file when the handle closes.
    const done = listeners.map((server) => new Promise<void>((resolve) => server.close(() => resolve())));
    for (const conn of [...this.connections]) conn.close();
    await Promise.all(done);
  }
}

async function removeStaleSocket(path: string): Promise<void> {
  try {
    const st = await lstat(path);
    if (!st.isSocket()) throw new AlreadyExistsError(`${path} exists and is not a socket`, { bare: true });
    await unlink(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
}

function isPromiseLike(v: unknown): v is PromiseLike<unknown> {
  return typeof v === "object" && v !== null && typeof (v as { then?: unknown }).then === "function";
}

/** One in-flight request; the AbortController and deadline timer are created only if the handler asks. */
class Call implements TtrpcCallContext {
  private controller: AbortController | undefined = undefined;
  private timer: NodeJS.Timeout | undefined = undefined;
  readonly deadline: number | undefined;

  constructor(
    readonly conn: Connection,
    readonly streamId: number,
    readonly service: string,
    readonly method: string,
    readonly metadata: TtrpcMetadata,
    timeoutNano: number,
  ) {
    this.deadline = timeoutNano > 0 ? Date.now() + timeoutNano / 1e6 : undefined;
  }

  get socket(): Socket {
    return this.conn.socket;
  }

  get signal(): AbortSignal {
    if (this.controller === undefined) {
      const controller = new AbortController();
      this.controller = controller;
      if (this.conn.closed) controller.abort(new CanceledError("ttrpc: connection closed", { bare: true }));
      else if (this.deadline !== undefined) {
        const remaining = this.deadline - Date.now();
        const expire = () => controller.abort(new DeadlineExceededError(""));
        if (remaining <= 0) expire();
        else this.timer = setTimeout(expire, remaining);
      }
    }
    return this.controller.signal;
  }

  abort(reason: Error): void {
    this.finish();
    if (this.controller !== undefined && !this.controller.signal.aborted) this.controller.abort(reason);
  }

  finish(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
  }
}

class Connection implements FrameSink {
  private readonly reader: FrameReader;
  private readonly calls = new Map<number, Call>();
  closed = false;
  private readonly writer: FrameWriter;

  constructor(
    readonly socket: Socket,
    private readonly services: Services,
    private readonly onClosed: () => void,
  ) {
    this.reader = new FrameReader(this, MAX_MESSAGE_LENGTH);
    this.writer = new FrameWriter(socket);
    socket.on("data", (chunk: Buffer) => this.reader.push(chunk));
    socket.on("error", () => {}); // "close" follows
    socket.on("close", () => this.shutdown());
    if (socket.destroyed) queueMicrotask(() => this.shutdown());
  }

  close(): void {
    this.socket.destroy();
    this.shutdown();
  }

  frame(streamId: number, type: number, _flags: number, payload: Buffer): void {
    if (this.closed) return;
    if (streamId % 2 !== 1) {
      this.sendStatus(streamId, {
        code: GrpcCode.InvalidArgument,
        message: "StreamID must be odd for client initiated streams",
        details: [],
      });
      return;
    }
    if (type !== MessageType.Request) return; // ttrpc 1.1 ignores other types (streaming is 1.2)
    let req: WireRequest;
    try {
      req = decodeRequest(payload);
    } catch (err) {
      this.sendStatus(streamId, {
        code: GrpcCode.InvalidArgument,
        message: `unmarshal request error: ${(err as Error).message}`,
        details: [],
      });
      return;
    }
    const methods = this.services.get(req.service);
    if (methods === undefined) {
      this.sendStatus(streamId, { code: GrpcCode.Unimplemented, message: `service ${req.service}`, details: [] });
      return;
    }
    const fn = methods.get(req.method);
    if (fn === undefined) {
      this.sendStatus(streamId, { code: GrpcCode.Unimplemented, message: `method ${req.method}`, details: [] });
      return;
    }
    const metadata = req.metadata.length > 0 ? metadataFromEntries(req.metadata) : EMPTY_METADATA;
    const call = new Call(this, streamId, req.service, req.method, metadata, req.timeoutNano);
    this.calls.set(streamId, call);
    let result: Promise<Uint8Array> | Uint8Array;
    try {
      result = fn(req.payload, call);
    } catch (err) {
      this.fail(call, err);
      return;
    }
    if (isPromiseLike(result))
      result.then(
        (bytes) => this.succeed(call, bytes),
        (err) => this.fail(call, err),
      );
    else this.succeed(call, result);
  }

  oversized(streamId: number, _type: number, length: number): void {
    if (this.closed) return;
    this.sendStatus(streamId, {
      code: GrpcCode.ResourceExhausted,
      message: `message length ${length} exceed maximum message size of ${MAX_MESSAGE_LENGTH}`,
      details: [],
    });
  }

  private succeed(call: Call, bytes: Uint8Array | undefined): void {
    if (!this.end(call)) return;
    const frame = encodeResponseFrame(call.streamId, undefined, bytes ?? EMPTY);
    const length = frame.length - HEADER_LENGTH;
    if (length > MAX_MESSAGE_LENGTH) {
      this.sendStatus(call.streamId, {
        code: GrpcCode.ResourceExhausted,
        message: `message length ${length} exceed maximum message size of ${MAX_MESSAGE_LENGTH}`,
        details: [],
      });
      return;
    }
    this.write(frame);
  }

  private fail(call: Call, err: unknown): void {
    if (!this.end(call)) return;
    this.sendStatus(call.streamId, statusFromError(err));
  }

  /** Forgets a finished call; false if the connection is gone (nothing to send). */
  private end(call: Call): boolean {
    call.finish();
    if (this.calls.get(call.streamId) === call) this.calls.delete(call.streamId);
    return !this.closed;
  }

  private sendStatus(streamId: number, status: WireStatus): void {
    this.write(encodeResponseFrame(streamId, encodeStatus(status), EMPTY));
  }

  private write(frame: Buffer): void {
    if (this.closed) return;
    this.writer.write(frame);
  }

  private shutdown(): void {
    if (this.closed) return;
    this.closed = true;
    if (!this.socket.destroyed) this.socket.destroy();
    const reason = new CanceledError("ttrpc: connection closed", { bare: true });
    for (const call of this.calls.values()) call.abort(reason);
    this.calls.clear();
    this.onClosed();
  }
}

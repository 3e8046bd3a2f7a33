import { createConnection, type Socket } from "node:net";
import { CanceledError, DeadlineExceededError } from "@berth/errdefs";
import { badResponseError, closedError, errorFromStatus, oversizedError } from "./errors.js";
import { FrameReader, type FrameSink } from "./internal/frame-reader.js";
import { FrameWriter } from "./internal/frame-writer.js";
import {
  decodeResponse,
  encodeMetadata,
  encodeRequestFrame,
  encodeRequestPrefix,
  MAX_MESSAGE_LENGTH,
  MessageType,
} from "./internal/wire.js";
import { metadataEntries, metadataKeys, type TtrpcMetadataInit } from "./metadata.js";

export interface TtrpcCallOptions {
  /** Deadline for this call, sent to the server as `timeout_nano`; the call fails with DeadlineExceeded. */
  readonly timeoutMs?: number;
  /** Metadata for this call; a key given here replaces the same key of the client's default metadata. */
  readonly metadata?: TtrpcMetadataInit;
  /** Aborting fails the call with Canceled (ttrpc 1.1 has no cancel message; a late reply is dropped). */
  readonly signal?: AbortSignal;
}

export interface TtrpcClientOptions {
  /** Metadata sent with every call, e.g. `{ "containerd-namespace-ttrpc": "default" }`. */
  readonly metadata?: TtrpcMetadataInit;
  /** Default deadline for calls that give none. */
  readonly timeoutMs?: number;
}

export interface TtrpcClient {
  /** One unary call; resolves with the response payload or rejects with a typed errdefs error. */
  call(service: string, method: string, payload: Uint8Array, options?: TtrpcCallOptions): Promise<Uint8Array>;
  /** Closes the connection; pending calls fail with Unavailable "ttrpc: closed". */
  close(): void;
  readonly closed: boolean;
  /** Runs once when the connection ends (closed by either side); `err` is the socket error, if any. */
  onClose(listener: (err: Error | undefined) => void): () => void;
  /** The underlying socket. */
  readonly socket: Socket;
}

/** A unix socket path, optionally as a `unix://` address (a shim's printed address). */
export function socketPathOf(address: string): string {
  return address.startsWith("unix://") ? address.slice("unix://".length) : address;
}

/**
 * Creates a ttrpc client over a unix socket path (connected lazily; early calls are queued) or an already
 * connected socket. Use {@link connectTtrpcClient} to wait for (and check) the connection first.
 */
export function createTtrpcClient(target: string | Socket, options: TtrpcClientOptions = {}): TtrpcClient {
  const socket = typeof target === "string" ? createConnection({ path: socketPathOf(target) }) : target;
  return new Client(socket, options);
}

/** Connects to a ttrpc server at a unix socket path; rejects with Unavailable if the connection fails. */
export function connectTtrpcClient(address: string, options: TtrpcClientOptions = {}): Promise<TtrpcClient> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ path: socketPathOf(address) });
    const onError = (err: Error) => {
      socket.destroy();
      reject(closedError(err));
    };
    socket.once("error", onError);
    socket.once("connect", () => {
      socket.off("error", onError);
      resolve(new Client(socket, options));
    });
  });
}

class PendingCall {
  timer: NodeJS.Timeout | undefined = undefined;
  signal: AbortSignal | undefined = undefined;
  onAbort: (() => void) | undefined = undefined;

  constructor(
    readonly resolve: (payload: Uint8Array) => void,
    readonly reject: (err: unknown) => void,
  ) {}

  cleanup(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    if (this.onAbort !== undefined) this.signal?.removeEventListener("abort", this.onAbort);
  }
}

class Client implements TtrpcClient, FrameSink {
  private nextId = 1;
  private readonly pending = new Map<number, PendingCall>();
  private readonly reader = new FrameReader(this);
  private readonly prefixes = new Map<string, Map<string, Buffer>>();
  private readonly defaultMetadata: Buffer | undefined;
  private readonly defaultKeys: ReadonlySet<string>;
  private readonly defaultInit: TtrpcMetadataInit | undefined;
  private readonly defaultTimeoutMs: number | undefined;
  private readonly listeners = new Set<(err: Error | undefined) => void>();
  private error: Error | undefined;
  private isClosed = false;
  private readonly writer: FrameWriter;

  constructor(
    readonly socket: Socket,
    options: TtrpcClientOptions,
  ) {
    this.defaultInit = options.metadata;
    const entries = options.metadata === undefined ? [] : metadataEntries(options.metadata);
    this.defaultMetadata = entries.length > 0 ? encodeMetadata(entries) : undefined;
    this.defaultKeys = new Set(entries.map(([k]) => k));
    this.defaultTimeoutMs = options.timeoutMs;
    this.writer = new FrameWriter(socket);
    socket.on("data", (chunk: Buffer) => this.reader.push(chunk));
    socket.on("error", (err) => {
      this.error ??= err;
    });
    socket.on("close", () => this.shutdown());
    socket.on("end", () => socket.end());
    if (socket.destroyed) queueMicrotask(() => this.shutdown());
  }

  get closed(): boolean {
    return this.isClosed;
  }

  call(service: string, method: string, payload: Uint8Array, options?: TtrpcCallOptions): Promise<Uint8Array> {
    if (this.isClosed) return Promise.reject(closedError(this.error));
    const signal = options?.signal;
    if (signal?.aborted) return Promise.reject(new CanceledError("", { cause: signal.reason }));

    const timeoutMs = options?.timeoutMs ?? this.defaultTimeoutMs;
    const timeoutNano = timeoutMs !== undefined && timeoutMs > 0 ? Math.round(timeoutMs * 1e6) : 0;
    let metadata1 = this.defaultMetadata;
    let metadata2: Buffer | undefined;
    if (options?.metadata !== undefined) {
      const entries = metadataEntries(options.metadata);
      if (entries.length > 0) {
        metadata2 = encodeMetadata(entries);
        if (metadata1 !== undefined && metadataKeys(options.metadata).some((k) => this.defaultKeys.has(k))) {
          const own = new Set(metadataKeys(options.metadata));
          const rest = metadataEntries(this.defaultInit ?? {}).filter(([k]) => !own.has(k));
          metadata1 = rest.length > 0 ? encodeMetadata(rest) : undefined;
        }
      }
    }

    const id = this.nextId;
    this.nextId = id >= 0xfffffffd ? 1 : id + 2;
    const frame = encodeRequestFrame(id, this.prefix(service, method), payload, timeoutNano, metadata1, metadata2);
    if (frame === undefined) {
      return Promise.reject(oversizedError(payload.length, MAX_MESSAGE_LENGTH));
    }

    return new Promise<Uint8Array>((resolve, reject) => {
      const call = new PendingCall(resolve, reject);
      this.pending.set(id, call);
      if (timeoutNano > 0) {
        call.timer = setTimeout(() => {
          if (this.pending.get(id) !== call) return;
          this.pending.delete(id);
          call.cleanup();
          reject(new DeadlineExceededError(""));
        }, timeoutMs);
      }
      if (signal !== undefined) {
        call.signal = signal;
        call.onAbort = () => {
          if (this.pending.get(id) !== call) return;
          this.pending.delete(id);
          call.cleanup();
          reject(new CanceledError("", { cause: signal.reason }));
        };
        signal.addEventListener("abort", call.onAbort, { once: true });
      }
      this.writer.write(frame);
    });
  }

  close(): void {
    if (this.isClosed) return;
    this.socket.destroy();
    this.shutdown();
  }

  onClose(listener: (err: Error | undefined) => void): () => void {
    if (this.isClosed) {
      queueMicrotask(() => listener(this.error));
      return () => {};
    }
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  // FrameSink

  frame(streamId: number, type: number, _flags: number, payload: Buffer): void {
    if (type !== MessageType.Response) return; // ttrpc 1.1 peers only answer unary calls
    const call = this.pending.get(streamId);
    if (call === undefined) return; // timed out, aborted, or never ours
    this.pending.delete(streamId);
    call.cleanup();
    let response: ReturnType<typeof decodeResponse>;
    try {
      response = decodeResponse(payload);
    } catch (err) {
      call.reject(badResponseError(err));
      return;
    }
    const status = response.status;
    if (status !== undefined && status.code !== 0) call.reject(errorFromStatus(status));
    else call.resolve(response.payload);
  }

  oversized(streamId: number, _type: number, length: number): void {
    const call = this.pending.get(streamId);
    if (call === undefined) return;
    this.pending.delete(streamId);
    call.cleanup();
    call.reject(oversizedError(length, MAX_MESSAGE_LENGTH));
  }

  private prefix(service: string, method: string): Buffer {
    let methods = this.prefixes.get(service);
    if (methods === undefined) {
      methods = new Map();
      this.prefixes.set(service, methods);
    }
    let prefix = methods.get(method);
    if (prefix === undefined) {
      prefix = encodeRequestPrefix(service, method);
      methods.set(method, prefix);
    }
    return prefix;
  }

  private shutdown(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    if (!this.socket.destroyed) this.socket.destroy();
    const calls = [...this.pending.values()];
    this.pending.clear();
    for (const call of calls) {
      call.cleanup();
      call.reject(closedError(this.error));
    }
    for (const listener of this.listeners) listener(this.error);
    this.listeners.clear();
  }
}

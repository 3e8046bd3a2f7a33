import type * as http2 from "node:http2";
import { type DescMethod, type DescService, create, fromBinary, isMessage, toBinary } from "@bufbuild/protobuf";
import type { ConnectRouter, ContextKey, ContextValues, HandlerContext } from "@connectrpc/connect";
import {
  CanceledError,
  DeadlineExceededError,
  GrpcCode,
  ResourceExhaustedError,
  errorKind,
  grpcCodeName,
  grpcCodeOf,
} from "@berth/errdefs";
import type { Logger } from "@berth/plugin";
import type { RpcMetrics } from "./interceptors.js";

/**
 * A direct path for unary gRPC calls. connect-node's universal handler costs ~3× a bare node:http2 handler per
 * call (Web Headers, AbortController/DOMException per request, async iterator plumbing); containerd's API is
 * mostly unary, so unary calls are decoded, run and answered here, with the same service implementations.
 * Streaming calls and anything unusual (compression, gRPC-Web) still go through connect-node.
 */

type UnaryFn = (req: unknown, ctx: HandlerContext) => unknown;

interface UnaryRoute {
  readonly service: DescService;
  readonly method: DescMethod;
  readonly fn: UnaryFn;
  readonly rpc: string;
}

/** A service as plugins register it: its descriptor and implementation (connect's ServiceImpl). */
export interface ServiceRegistration {
  readonly desc: DescService;
  readonly impl: Record<string, unknown>;
}

/** connect's ContextValues without importing connect at start-up. */
export function contextValues(): ContextValues {
  const values = new Map<symbol, unknown>();
  return {
    get: <T>(key: ContextKey<T>) => (values.has(key.id) ? (values.get(key.id) as T) : key.defaultValue),
    set<T>(key: ContextKey<T>, value: T) {
      values.set(key.id, value);
      return this;
    },
    delete(key) {
      values.delete(key.id);
      return this;
    },
  };
}

export interface FastUnaryOptions {
  readonly maxRecvMessageSize: number;
  readonly maxSendMessageSize: number;
  readonly log: Logger;
  readonly metrics?: RpcMetrics;
}

/** Reads request headers the way `Headers.get` does, without building a Headers object. */
export class RequestHeaders {
  constructor(private readonly raw: http2.IncomingHttpHeaders) {}
  get(name: string): string | null {
    const v = this.raw[name.toLowerCase()];
    if (v === undefined) return null;
    return Array.isArray(v) ? v.join(", ") : String(v);
  }
  has(name: string): boolean {
    return this.raw[name.toLowerCase()] !== undefined;
  }
  forEach(cb: (value: string, key: string) => void): void {
    for (const [k, v] of Object.entries(this.raw)) if (!k.startsWith(":") && v !== undefined) cb(String(v), k);
  }
}

/**
 * connect's HandlerContext for a call answered on a direct path. The signal and the response Headers are made
 * only when a handler asks for them: Node builds the Web Headers class on first use (loading undici).
 */
export function directHandlerContext(
  method: DescMethod,
  service: DescService,
  headers: http2.IncomingHttpHeaders,
  signal: () => AbortSignal,
  timeoutMs: () => number | undefined,
): HandlerContext {
  let responseHeader: Headers | undefined;
  let responseTrailer: Headers | undefined;
  return {
    method,
    service,
    get signal() {
      return signal();
    },
    timeoutMs,
    requestMethod: "POST",
    requestHeader: new RequestHeaders(headers) as unknown as Headers,
    get responseHeader() {
      responseHeader ??= new Headers();
      return responseHeader;
    },
    get responseTrailer() {
      responseTrailer ??= new Headers();
      return responseTrailer;
    },
    protocolName: "grpc",
    values: contextValues(),
    url: headers[":path"] as string,
  } as HandlerContext;
}

/** grpc-timeout: an integer and a unit (H, M, S, m, u, n). */
export function parseTimeout(value: string | undefined): number | undefined {
  if (!value) return undefined;
  const m = /^(\d{1,8})([HMSmun])$/.exec(value);
  if (!m) return undefined;
  const n = Number(m[1]);
  const scale: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 1e-3, n: 1e-6 };
  return n * (scale[m[2] as string] as number);
}

/** Percent-encodes a grpc-message as the gRPC spec asks (printable ASCII except '%' stays). */
export function encodeGrpcMessage(message: string): string {
  return message.replace(/[^\x20-\x24\x26-\x7e]/gu, (c) => encodeURIComponent(c));
}

/** A service registered to be loaded on its first call. */
interface LazyEntry {
  readonly load: () => Promise<(router: ConnectRouter) => void>;
  loading?: Promise<readonly ServiceRegistration[]>;
}

/** The service type name of a gRPC path (`/pkg.Service/Method` → `pkg.Service`). */
function serviceOfPath(path: string | undefined): string | undefined {
  if (path === undefined || path[0] !== "/") return undefined;
  const slash = path.indexOf("/", 1);
  return slash > 1 ? path.slice(1, slash) : undefined;
}

export class FastUnaryRoutes {
  readonly #routes = new Map<string, UnaryRoute>();
  readonly #lazy = new Map<string, LazyEntry>();
  readonly services: ServiceRegistration[] = [];
  /**
   * What plugins register their services with. Only `service()` is supported: it records the implementation
   * for the fast path and for connect-node (built later, on the first streaming call).
   */
  readonly router: ConnectRouter;

  constructor(private readonly options: FastUnaryOptions) {
    const service = (desc: DescService, impl: Record<string, unknown>) => {
      this.services.push({ desc, impl });
      for (const method of desc.methods) {
        const fn = impl[method.localName];
        if (method.methodKind !== "unary" || typeof fn !== "function") continue;
        const rpc = `/${desc.typeName}/${method.name}`;
        this.#routes.set(rpc, { service: desc, method, fn: fn.bind(impl) as UnaryFn, rpc });
      }
      return this.router;
    };
    this.router = { service } as unknown as ConnectRouter;
  }

  /** Registers a service that is loaded (descriptor, implementation) on its first call. */
  lazy(typeName: string, load: () => Promise<(router: ConnectRouter) => void>): void {
    this.#lazy.set(typeName, { load });
  }

  /** The not-yet-loaded lazy service a call path names, if any. */
  pendingService(path: string | undefined): string | undefined {
    const service = serviceOfPath(path);
    return service !== undefined && this.#lazy.has(service) ? service : undefined;
  }

  /** Lazy services not loaded yet. */
  pendingServices(): string[] {
    return [...this.#lazy.keys()];
  }

  /** Loads a lazy service once (concurrent first calls share the load); resolves to what it registered. */
  loadService(typeName: string): Promise<readonly ServiceRegistration[]> {
    const entry = this.#lazy.get(typeName);
    if (entry === undefined) return Promise.resolve([]);
    entry.loading ??= entry.load().then(
      (register) => {
        const before = this.services.length;
        register(this.router);
        this.#lazy.delete(typeName);
        return this.services.slice(before);
      },
      (err: unknown) => {
        entry.loading = undefined; // a later call tries again
        throw err;
      },
    );
    return entry.loading;
  }

  /** Handles the stream if it is a plain unary gRPC call to a known method; returns false otherwise. */
  tryHandle(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): boolean {
    const route = this.#routes.get(headers[":path"] as string);
    if (route === undefined) return false;
    const contentType = headers["content-type"];
    if (contentType !== "application/grpc" && contentType !== "application/grpc+proto") return false;
    const encoding = headers["grpc-encoding"];
    if (encoding !== undefined && encoding !== "identity") return false;
    this.#handle(route, stream, headers);
    return true;
  }

  #handle(route: UnaryRoute, stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void {
    const limit = this.options.maxRecvMessageSize + 5;
    const chunks: Buffer[] = [];
    let received = 0;
    let rejected = false;
    stream.on("data", (chunk: Buffer) => {
      if (rejected) return;
      received += chunk.length;
      if (received > limit) {
        rejected = true;
        chunks.length = 0;
        this.#fail(
          route,
          stream,
          new ResourceExhaustedError(
            `grpc: received message larger than max (${received - 5} vs. ${this.options.maxRecvMessageSize})`,
          ),
        );
        return;
      }
      chunks.push(chunk);
    });
    stream.on("end", () => {
      if (rejected) return;
      const body = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, received);
      this.#run(route, stream, headers, body).catch((err) => this.#fail(route, stream, err));
    });
    stream.on("error", () => {});
  }

  async #run(route: UnaryRoute, stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, body: Buffer) {
    const started = this.options.metrics?.duration ? performance.now() : 0;
    if (body.length < 5 || body[0] !== 0)
      throw new ResourceExhaustedError("grpc: malformed or compressed message frame");
    const length = body.readUInt32BE(1);
    if (length !== body.length - 5) throw new ResourceExhaustedError("grpc: message frame length mismatch");
    const request = fromBinary(route.method.input, body.subarray(5));
    const ctx = this.#context(route, stream, headers);
    const result = await route.fn(request, ctx);
    const message = isMessage(result, route.method.output) ? result : create(route.method.output, result as never);
    const bytes = toBinary(route.method.output, message);
    if (bytes.length > this.options.maxSendMessageSize) {
      throw new ResourceExhaustedError(`grpc: trying to send message larger than max (${bytes.length})`);
    }
    if (stream.destroyed) return;
    const frame = Buffer.allocUnsafe(5 + bytes.length);
    frame[0] = 0;
    frame.writeUInt32BE(bytes.length, 1);
    frame.set(bytes, 5);
    stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
    stream.once("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
    stream.end(frame);
    this.#count(route, GrpcCode.OK, started);
  }

  #context(route: UnaryRoute, stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): HandlerContext {
    const timeout = parseTimeout(headers["grpc-timeout"] as string | undefined);
    let signal: AbortSignal | undefined;
    // Most handlers never look at the signal: create it only on demand.
    const getSignal = () => {
      if (signal) return signal;
      const controller = new AbortController();
      signal = controller.signal;
      if (stream.closed) controller.abort(callEnded());
      else stream.once("close", () => controller.abort(callEnded()));
      if (timeout !== undefined) {
        const t = setTimeout(() => controller.abort(new DeadlineExceededError("context deadline exceeded")), timeout);
        stream.once("close", () => clearTimeout(t));
      }
      return signal;
    };
    return directHandlerContext(route.method, route.service, headers, getSignal, () => timeout);
  }

  #fail(route: UnaryRoute, stream: http2.ServerHttp2Stream, err: unknown): void {
    const code = grpcCodeOf(err);
    const message = err instanceof Error ? err.message : String(err);
    const kind = errorKind(err);
    if (kind === "Unknown" || kind === "Internal") this.options.log.error({ rpc: route.rpc, err }, "rpc failed");
    else this.options.log.debug({ rpc: route.rpc, code: kind, err: message }, "rpc failed");
    this.#count(route, code, 0);
    if (stream.destroyed || stream.closed) return;
    if (stream.headersSent) {
      stream.close(http2constants.NGHTTP2_INTERNAL_ERROR);
      return;
    }
    stream.respond(
      {
        ":status": 200,
        "content-type": "application/grpc",
        "grpc-status": String(code),
        "grpc-message": encodeGrpcMessage(message),
      },
      { endStream: true },
    );
  }

  #count(route: UnaryRoute, code: number, started: number): void {
    const m = this.options.metrics;
    if (!m) return;
    m.handled.inc({
      grpc_service: route.service.typeName,
      grpc_method: route.method.name,
      grpc_code: grpcCodeName(code),
    });
    if (m.duration && started) {
      m.duration.observe(
        { grpc_service: route.service.typeName, grpc_method: route.method.name },
        (performance.now() - started) / 1000,
      );
    }
  }
}

const http2constants = { NGHTTP2_INTERNAL_ERROR: 2 };

// One shared reason for signals of calls that have ended: `abort()` without one builds a DOMException with a
// stack trace, a noticeable cost on every call whose handler looked at its signal.
let callEndedReason: Error | undefined;
const callEnded = (): Error => {
  callEndedReason ??= new CanceledError("the call has ended");
  return callEndedReason;
};

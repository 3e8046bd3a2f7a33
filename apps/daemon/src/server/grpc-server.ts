import { chmod, chown, mkdir, rm } from "node:fs/promises";
import * as http2 from "node:http2";
import { dirname } from "node:path";
import type { Logger } from "@berth/plugin";
import type { ConnectRouter, Interceptor } from "@connectrpc/connect";
import { FastStreamRoutes } from "./fast-stream.js";
import { FastUnaryRoutes, type ServiceRegistration } from "./fast-unary.js";
import type { RpcMetrics } from "./interceptors.js";

export interface GrpcServerOptions {
  readonly address: string;
  readonly uid: number;
  readonly gid: number;
  readonly routes: (router: ConnectRouter) => void;
  /** Services loaded on their first call: full type name → loader. */
  readonly lazyServices?: Iterable<readonly [string, () => Promise<(router: ConnectRouter) => void>]>;
  readonly maxRecvMessageSize: number;
  readonly maxSendMessageSize: number;
  readonly log: Logger;
  readonly metrics?: RpcMetrics;
  /**
   * Milliseconds after start-up at which lazy services (and connect-node) are loaded in the background, so a
   * running daemon needs none of its files later (e.g. after an upgrade replaced them). Default 500; -1: never.
   */
  readonly warmUpDelayMs?: number;
  /** Serve unary calls on the direct path (default true); false leaves every call to connect-node. */
  readonly fastUnary?: boolean;
  /** Serve the content streams (Content.Write, Content.Read) on the direct path (default true). */
  readonly fastStreams?: boolean;
}

export interface GrpcServer {
  readonly address: string;
  close(graceMs?: number): Promise<void>;
}

const STREAM_WINDOW_BYTES = 8 << 20;
const CONNECTION_WINDOW_BYTES = 32 << 20;

type NodeHandler = (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void;

/** Answers an unknown method the way grpc-go understands: a trailers-only Unimplemented response. */
function unimplemented(log: Logger) {
  return (req: { url?: string }, res: unknown) => {
    const stream = (res as http2.Http2ServerResponse).stream;
    const path = req.url ?? "";
    log.debug({ rpc: path }, "unknown method");
    if (stream && !stream.headersSent && !stream.destroyed) {
      stream.respond(
        {
          ":status": 200,
          "content-type": "application/grpc",
          "grpc-status": "12",
          "grpc-message": encodeURIComponent(`unknown method ${path}`),
        },
        { endStream: true },
      );
    }
  };
}

/**
 * Builds connect-node's handler for everything the unary fast path does not take (streams, unknown methods).
 * Loaded on first use: connect-node and its dependencies are a large share of the daemon's start-up time,
 * and containerd's clients mostly make unary calls.
 */
async function createConnectHandler(
  options: GrpcServerOptions,
  services: readonly ServiceRegistration[],
): Promise<NodeHandler> {
  const [{ connectNodeAdapter }, { serverInterceptor }] = await Promise.all([
    import("@connectrpc/connect-node"),
    import("./interceptors.js"),
  ]);
  const interceptors: Interceptor[] = [serverInterceptor(options.log, options.metrics)];
  return connectNodeAdapter({
    routes: (router) => {
      for (const { desc, impl } of services) router.service(desc, impl as never);
    },
    grpc: true,
    grpcWeb: false,
    connect: false,
    interceptors,
    readMaxBytes: options.maxRecvMessageSize,
    writeMaxBytes: options.maxSendMessageSize,
    fallback: unimplemented(options.log),
  }) as NodeHandler;
}

/** A gRPC (HTTP/2 cleartext) server on a unix socket. */
export async function startGrpcServer(options: GrpcServerOptions): Promise<GrpcServer> {
  const fast = new FastUnaryRoutes(options);
  options.routes(fast.router);
  for (const [typeName, load] of options.lazyServices ?? []) fast.lazy(typeName, load);
  const fastStreams = options.fastStreams === false ? undefined : new FastStreamRoutes(options, fast.services);
  const fastUnary = options.fastUnary !== false;

  // connect-node's handler is built on the first call it must take, and again when lazy services were loaded
  // since (connect's router is fixed at creation).
  let connectHandler: Promise<NodeHandler> | undefined;
  let connectServices = 0;
  // Large flow-control windows: with HTTP/2's 64 KiB default, a client streaming 1 MiB content writes waits for
  // a WINDOW_UPDATE every 64 KiB (Go's server grows its windows by BDP estimation; Node's does not).
  const server = http2.createServer({
    maxSessionMemory: 64,
    settings: { initialWindowSize: STREAM_WINDOW_BYTES },
  });
  server.on("request", (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => {
    if (connectHandler === undefined || connectServices !== fast.services.length) {
      connectServices = fast.services.length;
      const building = createConnectHandler(options, [...fast.services]);
      connectHandler = building;
      // A failed load is not kept: the next call tries again.
      building.catch(() => {
        if (connectHandler === building) connectHandler = undefined;
      });
    }
    connectHandler.then(
      (handle) => handle(req, res),
      (err) => {
        options.log.error({ err }, "loading the gRPC stream handler failed");
        res.stream?.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
      },
    );
  });
  // Node's compat layer listens on "stream" to build req/res for the request handler; unary calls with a
  // known method, and the content streams, skip it and are answered directly.
  const compat = server.listeners("stream") as Array<(...args: unknown[]) => void>;
  server.removeAllListeners("stream");
  const dispatch = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, rest: unknown[]) => {
    if (fastUnary && fast.tryHandle(stream, headers)) return;
    if (fastStreams?.tryHandle(stream, headers)) return;
    for (const listener of compat) listener.call(server, stream, headers, ...rest);
  };
  server.on("stream", (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, ...rest: unknown[]) => {
    const pending = fast.pendingService(headers[":path"]);
    if (pending === undefined) {
      dispatch(stream, headers, rest);
      return;
    }
    // The request body waits in the (paused) stream while the service loads.
    fast.loadService(pending).then(
      (added) => {
        fastStreams?.add(added);
        dispatch(stream, headers, rest);
      },
      (err: unknown) => {
        options.log.error({ err, service: pending }, "loading a gRPC service failed");
        if (stream.destroyed || stream.headersSent) return;
        stream.respond(
          {
            ":status": 200,
            "content-type": "application/grpc",
            "grpc-status": "14",
            "grpc-message": encodeURIComponent(`loading service ${pending} failed`),
          },
          { endStream: true },
        );
      },
    );
  });
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("session", (session) => {
    session.setLocalWindowSize(CONNECTION_WINDOW_BYTES);
    sessions.add(session);
    session.on("close", () => sessions.delete(session));
  });

  await mkdir(dirname(options.address), { recursive: true, mode: 0o711 });
  await rm(options.address, { force: true });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.address, () => {
      server.off("error", reject);
      resolve();
    });
  });
  await chmod(options.address, 0o660);
  const warmUpDelay = options.warmUpDelayMs ?? 500;
  let closing = false;
  const warmUp = async () => {
    for (const name of fast.pendingServices()) {
      // one service per turn of the event loop: calls keep being answered meanwhile
      await new Promise((resolve) => setImmediate(resolve));
      if (closing) return;
      try {
        fastStreams?.add(await fast.loadService(name));
      } catch (err) {
        options.log.warn({ err, service: name }, "loading a gRPC service in the background failed");
      }
    }
    if (closing || connectHandler !== undefined) return;
    connectServices = fast.services.length;
    const building = createConnectHandler(options, [...fast.services]);
    connectHandler = building;
    building.catch(() => {
      if (connectHandler === building) connectHandler = undefined;
    });
  };
  const warmUpTimer = warmUpDelay >= 0 ? setTimeout(() => void warmUp(), warmUpDelay) : undefined;
  warmUpTimer?.unref();
  if (options.uid !== 0 || options.gid !== 0) await chown(options.address, options.uid, options.gid);

  return {
    address: options.address,
    async close(graceMs = 2000) {
      closing = true;
      clearTimeout(warmUpTimer);
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      // server.close() leaves open sessions running: send GOAWAY, then cut what is still open after the grace.
      for (const session of sessions) session.close();
      const timer = setTimeout(() => {
        for (const session of sessions) session.destroy();
      }, graceMs);
      await closed;
      clearTimeout(timer);
      await rm(options.address, { force: true });
    },
  };
}

import { chmod, chown, mkdir, rm } from "node:fs/promises";
import * as http2 from "node:http2";
import { dirname } from "node:path";
import type { ConnectRouter, Interceptor } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import type { Logger } from "@berth/plugin";
import { FastUnaryRoutes } from "./fast-unary.js";
import type { RpcMetrics } from "./interceptors.js";

export interface GrpcServerOptions {
  readonly address: string;
  readonly uid: number;
  readonly gid: number;
  readonly routes: (router: ConnectRouter) => void;
  readonly interceptors: Interceptor[];
  readonly maxRecvMessageSize: number;
  readonly maxSendMessageSize: number;
  readonly log: Logger;
  readonly metrics?: RpcMetrics;
  /** Serve unary calls on the direct path (default true); false leaves every call to connect-node. */
  readonly fastUnary?: boolean;
}

export interface GrpcServer {
  readonly address: string;
  close(graceMs?: number): Promise<void>;
}

/**
 * A gRPC (HTTP/2 cleartext) server on a unix socket. Unknown methods get a trailers-only Unimplemented reply:
 * grpc-go reports connect's default 404 as "missing content-type" instead.
 */
export async function startGrpcServer(options: GrpcServerOptions): Promise<GrpcServer> {
  const fast = new FastUnaryRoutes(options);
  const handler = connectNodeAdapter({
    routes: (router) => options.routes(fast.recordingRouter(router)),
    grpc: true,
    grpcWeb: false,
    connect: false,
    interceptors: options.interceptors,
    readMaxBytes: options.maxRecvMessageSize,
    writeMaxBytes: options.maxSendMessageSize,
    fallback(req, res) {
      const stream = (res as unknown as http2.Http2ServerResponse).stream;
      const path = req.url ?? "";
      options.log.debug({ rpc: path }, "unknown method");
      if (stream && !stream.headersSent) {
        stream.respond(
          {
            ":status": 200,
            "content-type": "application/grpc",
            "grpc-status": "12",
            "grpc-message": encodeURIComponent(`unknown method ${path}`),
          },
          { endStream: true },
        );
      } else {
        res.writeHead(404);
        res.end();
      }
    },
  });
  const server = http2.createServer({ maxSessionMemory: 64 }, handler);
  if (options.fastUnary !== false) {
    // Node's compat layer listens on "stream" to build req/res for connect; unary calls it knows skip that.
    const compat = server.listeners("stream") as Array<(...args: unknown[]) => void>;
    server.removeAllListeners("stream");
    server.on("stream", (stream, headers, ...rest) => {
      if (fast.tryHandle(stream, headers)) return;
      for (const listener of compat) listener.call(server, stream, headers, ...rest);
    });
  }
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("session", (session) => {
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
  if (options.uid !== 0 || options.gid !== 0) await chown(options.address, options.uid, options.gid);

  return {
    address: options.address,
    async close(graceMs = 2000) {
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

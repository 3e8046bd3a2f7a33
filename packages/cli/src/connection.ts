/** The gRPC connection to the daemon: HTTP/2 cleartext over a unix socket, as ctr dials containerd. */
import * as net from "node:net";
import type { Interceptor, Transport } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";

/** containerd's client message limit in both directions (`16 << 20`). */
export const MAX_MESSAGE_BYTES = 16 << 20;

/** gRPC metadata key carrying the namespace of a call. */
export const NAMESPACE_HEADER = "containerd-namespace";

export interface Connection {
  readonly transport: Transport;
  /** Ends the HTTP/2 session (open streams are aborted). */
  close(): void;
}

export interface ConnectionOptions {
  /** Path of the unix socket. */
  readonly address: string;
  readonly namespace: string;
  /** Extra interceptors, after the namespace one (e.g. `--debug` tracing). */
  readonly interceptors?: readonly Interceptor[];
}

/** Adds `containerd-namespace` to every call, like every ctr call carries it. */
export function namespaceInterceptor(namespace: string): Interceptor {
  return (next) => async (req) => {
    req.header.set(NAMESPACE_HEADER, namespace);
    return next(req);
  };
}

/**
 * Opens a gRPC transport to `address`. The `:authority` is `localhost` (what grpc-go sends for unix targets;
 * Node's HTTP/2 server rejects one containing `/`). The socket is dialled lazily, on the first call.
 */
export function createConnection(options: ConnectionOptions): Connection {
  const baseUrl = "http://localhost";
  const nodeOptions = { createConnection: () => net.connect(options.address) };
  const sessionManager = new Http2SessionManager(baseUrl, undefined, nodeOptions);
  // the gRPC transport is always HTTP/2; our session manager dials the socket
  const transport = createGrpcTransport({
    baseUrl,
    sessionManager,
    readMaxBytes: MAX_MESSAGE_BYTES,
    writeMaxBytes: MAX_MESSAGE_BYTES,
    interceptors: [namespaceInterceptor(options.namespace), ...(options.interceptors ?? [])],
  });
  return {
    transport,
    close: () => sessionManager.abort(),
  };
}

/** The gRPC connection to the daemon: HTTP/2 cleartext over a unix socket, as ctr dials containerd. */
import type * as http2 from "node:http2";
import * as net from "node:net";
import type { Interceptor, Transport } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";

/** containerd's client message limit in both directions (`16 << 20`). */
export const MAX_MESSAGE_BYTES = 16 << 20;

/** gRPC metadata key carrying the namespace of a call. */
export const NAMESPACE_HEADER = "containerd-namespace";

/**
 * Raw HTTP/2 streams on the connection's session, for calls that frame their gRPC messages themselves (the
 * Content.Write path in `fast-write.ts`): the same socket, session and keep-alive bookkeeping as the transport.
 */
export interface DirectStreams {
  /** The namespace every call carries (`containerd-namespace`). */
  readonly namespace: string;
  /** The transport's message size limits. */
  readonly readMaxBytes: number;
  readonly writeMaxBytes: number;
  /** Opens a stream (`:method` POST) with these headers; dial failures reject as the transport's calls do. */
  open(path: string, headers: http2.OutgoingHttpHeaders): Promise<http2.ClientHttp2Stream>;
  /** Tells the session's keep-alive logic that the stream received bytes. */
  notifyRead(stream: http2.ClientHttp2Stream): void;
}

export interface Connection {
  readonly transport: Transport;
  /**
   * Direct streams on the same session; absent when calls must go through the transport (in-memory transports,
   * or extra interceptors such as `--debug` tracing that a direct call would skip).
   */
  readonly direct?: DirectStreams;
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
  const direct: DirectStreams | undefined =
    (options.interceptors ?? []).length > 0
      ? undefined
      : {
          namespace: options.namespace,
          readMaxBytes: MAX_MESSAGE_BYTES,
          writeMaxBytes: MAX_MESSAGE_BYTES,
          open: (path, headers) => sessionManager.request("POST", path, headers, {}),
          notifyRead: (stream) => sessionManager.notifyResponseByteRead(stream),
        };
  return {
    transport,
    ...(direct === undefined ? {} : { direct }),
    close: () => sessionManager.abort(),
  };
}

const directByClient = new WeakMap<object, DirectStreams>();

/** Records that `client` was made over a connection with direct streams (see `directStreamsOf`). */
export function attachDirectStreams(client: object, direct: DirectStreams | undefined): void {
  if (direct !== undefined) directByClient.set(client, direct);
}

/** The direct streams of the connection a client was made over, when it has them. */
export function directStreamsOf(client: object): DirectStreams | undefined {
  return directByClient.get(client);
}

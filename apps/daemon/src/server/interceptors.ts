import { errorKind, grpcCodeName } from "@berth/errdefs";
import { toConnectError } from "@berth/errdefs/connect";
import type { Logger } from "@berth/plugin";
import type { Interceptor, StreamResponse } from "@connectrpc/connect";
import type { Counter, Histogram } from "prom-client";

export interface RpcMetrics {
  readonly handled: Counter<"grpc_service" | "grpc_method" | "grpc_code">;
  readonly duration?: Histogram<"grpc_service" | "grpc_method">;
}

async function* mapStreamErrors<T>(messages: AsyncIterable<T>): AsyncIterable<T> {
  try {
    yield* messages;
  } catch (err) {
    throw toConnectError(err);
  }
}

/**
 * The one interceptor of the daemon's gRPC server: maps typed errors to gRPC codes (in one place), logs each
 * call at debug and failures at their level, and counts calls when metrics are on.
 */
export function serverInterceptor(log: Logger, metrics?: RpcMetrics): Interceptor {
  const debug = log.debug.bind(log);
  return (next) => async (req) => {
    const service = req.service.typeName;
    const method = req.method.name;
    const started = metrics?.duration ? performance.now() : 0;
    let code = "OK";
    try {
      const res = await next(req);
      if (res.stream) {
        return { ...res, message: mapStreamErrors(res.message) } as StreamResponse;
      }
      return res;
    } catch (err) {
      const ce = toConnectError(err);
      code = grpcCodeName(ce.code);
      const kind = errorKind(err);
      if (kind === "Unknown" || kind === "Internal") log.error({ rpc: `${service}/${method}`, err }, "rpc failed");
      else debug({ rpc: `${service}/${method}`, code: kind, err: ce.rawMessage }, "rpc failed");
      throw ce;
    } finally {
      metrics?.handled.inc({ grpc_service: service, grpc_method: method, grpc_code: code });
      metrics?.duration?.observe({ grpc_service: service, grpc_method: method }, (performance.now() - started) / 1000);
    }
  };
}

import { type Code, ConnectError } from "@connectrpc/connect";
import { BerthError } from "../kinds.js";
import { errorFromGrpcCode, grpcCodeOf } from "../grpc-codes.js";

/** Converts any error into a ConnectError carrying containerd's gRPC code (used by one server interceptor). */
export function toConnectError(err: unknown): ConnectError {
  if (err instanceof ConnectError) return err;
  const message = err instanceof Error ? err.message : String(err);
  // connect's Code enum uses the gRPC code numbers.
  return new ConnectError(message, grpcCodeOf(err) as Code, undefined, undefined, err);
}

/** Converts an error received from a Connect client call back into a typed Berth error. */
export function fromConnectError(err: unknown): BerthError {
  if (err instanceof BerthError) return err;
  const ce = ConnectError.from(err);
  return errorFromGrpcCode(ce.code, ce.rawMessage);
}

/** Wraps a client call so that its errors come back typed (`isNotFound` works as in-process). */
export async function callTyped<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    throw fromConnectError(err);
  }
}

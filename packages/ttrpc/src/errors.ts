import {
  type BerthError,
  errorFromGrpcCode,
  GrpcCode,
  grpcCodeOf,
  InternalError,
  ResourceExhaustedError,
  UnavailableError,
} from "@berth/errdefs";
import type { StatusDetail, WireStatus } from "./internal/wire.js";

/** A google.rpc.Status as carried in a ttrpc Response. */
export type TtrpcStatus = WireStatus;
export type { StatusDetail };

const DETAILS = Symbol.for("berth.ttrpc.statusDetails");

/** Turns a non-OK status received from a peer into a typed errdefs error; the remote message is kept as is. */
export function errorFromStatus(status: TtrpcStatus): BerthError {
  const err = errorFromGrpcCode(status.code, status.message);
  if (status.details.length > 0) {
    Object.defineProperty(err, DETAILS, { value: status.details, enumerable: false });
  }
  return err;
}

/** The `google.rpc.Status.details` a remote error carried, if any. */
export function statusDetailsOf(err: unknown): readonly StatusDetail[] {
  if (typeof err !== "object" || err === null) return [];
  return (err as { [DETAILS]?: readonly StatusDetail[] })[DETAILS] ?? [];
}

/** The status to send for an error thrown by a handler (code from its errdefs kind; Unknown by default). */
export function statusFromError(err: unknown): TtrpcStatus {
  let code = grpcCodeOf(err);
  if (code === GrpcCode.OK) code = GrpcCode.Unknown;
  const message = err instanceof Error ? err.message : String(err);
  return { code, message, details: statusDetailsOf(err) };
}

export function closedError(cause?: unknown): BerthError {
  return new UnavailableError("ttrpc: closed", cause === undefined ? { bare: true } : { bare: true, cause });
}

export function oversizedError(length: number, max: number): BerthError {
  return new ResourceExhaustedError(`message length ${length} exceed maximum message size of ${max}`, { bare: true });
}

export function badResponseError(cause: unknown): BerthError {
  const reason = cause instanceof Error ? cause.message : String(cause);
  return new InternalError(`ttrpc: failed to decode response: ${reason}`, { bare: true, cause });
}

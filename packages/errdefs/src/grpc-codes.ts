import { BerthError, type ErrorKind, errorKind } from "./kinds.js";

/** gRPC status codes (numbers as on the wire). */
export const GrpcCode = {
  OK: 0,
  Canceled: 1,
  Unknown: 2,
  InvalidArgument: 3,
  DeadlineExceeded: 4,
  NotFound: 5,
  AlreadyExists: 6,
  PermissionDenied: 7,
  ResourceExhausted: 8,
  FailedPrecondition: 9,
  Aborted: 10,
  OutOfRange: 11,
  Unimplemented: 12,
  Internal: 13,
  Unavailable: 14,
  DataLoss: 15,
  Unauthenticated: 16,
} as const;

const KIND_TO_CODE: Record<ErrorKind, number> = {
  Unknown: GrpcCode.Unknown,
  InvalidArgument: GrpcCode.InvalidArgument,
  NotFound: GrpcCode.NotFound,
  AlreadyExists: GrpcCode.AlreadyExists,
  PermissionDenied: GrpcCode.PermissionDenied,
  ResourceExhausted: GrpcCode.ResourceExhausted,
  // containerd has no gRPC code for these two; both travel as FailedPrecondition.
  FailedPrecondition: GrpcCode.FailedPrecondition,
  Conflict: GrpcCode.FailedPrecondition,
  NotModified: GrpcCode.FailedPrecondition,
  Aborted: GrpcCode.Aborted,
  OutOfRange: GrpcCode.OutOfRange,
  NotImplemented: GrpcCode.Unimplemented,
  Internal: GrpcCode.Internal,
  Unavailable: GrpcCode.Unavailable,
  DataLoss: GrpcCode.DataLoss,
  Unauthenticated: GrpcCode.Unauthenticated,
  Canceled: GrpcCode.Canceled,
  DeadlineExceeded: GrpcCode.DeadlineExceeded,
};

const CODE_TO_KIND: Record<number, ErrorKind> = {
  [GrpcCode.Canceled]: "Canceled",
  [GrpcCode.Unknown]: "Unknown",
  [GrpcCode.InvalidArgument]: "InvalidArgument",
  [GrpcCode.DeadlineExceeded]: "DeadlineExceeded",
  [GrpcCode.NotFound]: "NotFound",
  [GrpcCode.AlreadyExists]: "AlreadyExists",
  [GrpcCode.PermissionDenied]: "PermissionDenied",
  [GrpcCode.ResourceExhausted]: "ResourceExhausted",
  [GrpcCode.FailedPrecondition]: "FailedPrecondition",
  [GrpcCode.Aborted]: "Aborted",
  [GrpcCode.OutOfRange]: "OutOfRange",
  [GrpcCode.Unimplemented]: "NotImplemented",
  [GrpcCode.Internal]: "Internal",
  [GrpcCode.Unavailable]: "Unavailable",
  [GrpcCode.DataLoss]: "DataLoss",
  [GrpcCode.Unauthenticated]: "Unauthenticated",
};

export function grpcCodeOfKind(kind: ErrorKind): number {
  return KIND_TO_CODE[kind];
}

/** The gRPC code for any error (typed kinds, Node errnos, aborts); Unknown otherwise. */
export function grpcCodeOf(err: unknown): number {
  return KIND_TO_CODE[errorKind(err)];
}

export function kindOfGrpcCode(code: number): ErrorKind {
  return CODE_TO_KIND[code] ?? "Unknown";
}

/** Rebuilds a typed error from a code and message received over the wire (the message is kept as is). */
export function errorFromGrpcCode(code: number, message: string): BerthError {
  return new BerthError(kindOfGrpcCode(code), message, { bare: true });
}

const CODE_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(GrpcCode).map(([name, code]) => [code, name]),
);

/** The name grpc-go prints for a code ("OK", "NotFound", "Unimplemented"), as containerd's metrics label it. */
export function grpcCodeName(code: number): string {
  return CODE_NAMES[code] ?? `Code(${code})`;
}

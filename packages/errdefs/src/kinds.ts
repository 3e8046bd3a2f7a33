/**
 * Error kinds, following containerd's errdefs. A kind travels as a brand on the error object, so two
 * installed copies of this package agree on it (no `instanceof` across packages).
 */
export const ERROR_KINDS = [
  "Unknown",
  "InvalidArgument",
  "NotFound",
  "AlreadyExists",
  "PermissionDenied",
  "ResourceExhausted",
  "FailedPrecondition",
  "Conflict",
  "NotModified",
  "Aborted",
  "OutOfRange",
  "NotImplemented",
  "Internal",
  "Unavailable",
  "DataLoss",
  "Unauthenticated",
  "Canceled",
  "DeadlineExceeded",
] as const;

export type ErrorKind = (typeof ERROR_KINDS)[number];

const KIND_BRAND = Symbol.for("berth.errdefs.kind");

/** The text containerd appends to a message of each kind (`namespace a: already exists`). */
const KIND_SUFFIX: Record<ErrorKind, string> = {
  Unknown: "unknown",
  InvalidArgument: "invalid argument",
  NotFound: "not found",
  AlreadyExists: "already exists",
  PermissionDenied: "permission denied",
  ResourceExhausted: "resource exhausted",
  FailedPrecondition: "failed precondition",
  Conflict: "conflict",
  NotModified: "not modified",
  Aborted: "aborted",
  OutOfRange: "out of range",
  NotImplemented: "not implemented",
  Internal: "internal",
  Unavailable: "unavailable",
  DataLoss: "data loss",
  Unauthenticated: "unauthenticated",
  Canceled: "context canceled",
  DeadlineExceeded: "context deadline exceeded",
};

export interface BerthErrorOptions {
  readonly cause?: unknown;
  /** Use the subject as the whole message, without the kind's suffix (for messages received from elsewhere). */
  readonly bare?: boolean;
}

export class BerthError extends Error {
  declare readonly [KIND_BRAND]: ErrorKind;
  readonly kind: ErrorKind;

  constructor(kind: ErrorKind, subject: string, options: BerthErrorOptions = {}) {
    const suffix = KIND_SUFFIX[kind];
    const message =
      options.bare || subject.endsWith(suffix) ? subject : subject === "" ? suffix : `${subject}: ${suffix}`;
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.kind = kind;
    Object.defineProperty(this, KIND_BRAND, { value: kind, enumerable: false });
    this.name = `${kind}Error`;
  }
}

function defineKind(kind: ErrorKind) {
  return class extends BerthError {
    constructor(subject: string, options?: BerthErrorOptions) {
      super(kind, subject, options);
    }
  };
}

export const UnknownError = defineKind("Unknown");
export const InvalidArgumentError = defineKind("InvalidArgument");
export const NotFoundError = defineKind("NotFound");
export const AlreadyExistsError = defineKind("AlreadyExists");
export const PermissionDeniedError = defineKind("PermissionDenied");
export const ResourceExhaustedError = defineKind("ResourceExhausted");
export const FailedPreconditionError = defineKind("FailedPrecondition");
export const ConflictError = defineKind("Conflict");
export const NotModifiedError = defineKind("NotModified");
export const AbortedError = defineKind("Aborted");
export const OutOfRangeError = defineKind("OutOfRange");
export const NotImplementedError = defineKind("NotImplemented");
export const InternalError = defineKind("Internal");
export const UnavailableError = defineKind("Unavailable");
export const DataLossError = defineKind("DataLoss");
export const UnauthenticatedError = defineKind("Unauthenticated");
export const CanceledError = defineKind("Canceled");
export const DeadlineExceededError = defineKind("DeadlineExceeded");

/** Creates an error of the given kind (e.g. from a gRPC code received over the wire). */
export function errorOfKind(kind: ErrorKind, subject: string, options?: BerthErrorOptions): BerthError {
  return new BerthError(kind, subject, options);
}

/** The kind of an error: its own brand, else the brand of the nearest `cause`, else a Node errno, else Unknown. */
export function errorKind(err: unknown): ErrorKind {
  for (let e: unknown = err, depth = 0; e != null && depth < 16; depth++) {
    if (typeof e !== "object") break;
    const brand = (e as { [KIND_BRAND]?: ErrorKind })[KIND_BRAND];
    if (brand !== undefined) return brand;
    if ((e as { name?: string }).name === "AbortError") return "Canceled";
    if ((e as { name?: string }).name === "TimeoutError") return "DeadlineExceeded";
    e = (e as { cause?: unknown }).cause;
  }
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === "string" && code in ERRNO_KINDS) return ERRNO_KINDS[code] as ErrorKind;
  return "Unknown";
}

const is = (kind: ErrorKind) => (err: unknown) => errorKind(err) === kind;
export const isInvalidArgument = is("InvalidArgument");
export const isNotFound = is("NotFound");
export const isAlreadyExists = is("AlreadyExists");
export const isPermissionDenied = is("PermissionDenied");
export const isResourceExhausted = is("ResourceExhausted");
export const isFailedPrecondition = is("FailedPrecondition");
export const isConflict = is("Conflict");
export const isNotModified = is("NotModified");
export const isAborted = is("Aborted");
export const isOutOfRange = is("OutOfRange");
export const isNotImplemented = is("NotImplemented");
export const isInternal = is("Internal");
export const isUnavailable = is("Unavailable");
export const isDataLoss = is("DataLoss");
export const isUnauthenticated = is("Unauthenticated");
export const isCanceled = is("Canceled");
export const isDeadlineExceeded = is("DeadlineExceeded");
export const isUnknown = is("Unknown");

const ERRNO_KINDS: Record<string, ErrorKind> = {
  ENOENT: "NotFound",
  EEXIST: "AlreadyExists",
  EACCES: "PermissionDenied",
  EPERM: "PermissionDenied",
  ENOSPC: "ResourceExhausted",
  EDQUOT: "ResourceExhausted",
  ENOTSUP: "NotImplemented",
  EOPNOTSUPP: "NotImplemented",
  ENOSYS: "NotImplemented",
  EBUSY: "FailedPrecondition",
  ENOTEMPTY: "FailedPrecondition",
  EINVAL: "InvalidArgument",
  ENAMETOOLONG: "InvalidArgument",
};

/** Maps a Node system error (errno code) to a typed error, keeping the original as `cause`. */
export function fromNodeError(err: unknown, subject?: string): BerthError {
  if (err instanceof BerthError) return err;
  const e = err as NodeJS.ErrnoException;
  const kind = (e?.code && ERRNO_KINDS[e.code]) || "Unknown";
  const text = subject ?? e?.message ?? String(err);
  return new BerthError(kind, text, { cause: err, bare: subject === undefined });
}

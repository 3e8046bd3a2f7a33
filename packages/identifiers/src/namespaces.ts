import { FailedPreconditionError, InvalidArgumentError, isInvalidArgument } from "@berth/errdefs";
import { validateIdentifier } from "./identifiers.js";

/** gRPC metadata key carrying the namespace of a call. */
export const NAMESPACE_HEADER = "containerd-namespace";
/** ttrpc metadata key carrying the namespace of a call (daemon → shim, shim → daemon). */
export const TTRPC_NAMESPACE_HEADER = "containerd-namespace-ttrpc";
/** gRPC metadata key carrying the lease of a call. */
export const LEASE_HEADER = "containerd-lease";
/** The namespace `ctr` uses when neither `--namespace` nor `CONTAINERD_NAMESPACE` is given. */
export const DEFAULT_NAMESPACE = "default";

/**
 * Where request headers come from: a getter function, or anything with `get(key)` (Fetch `Headers`,
 * which Connect uses; a `Map`). Missing keys read as `null` or `undefined`.
 */
export type HeaderSource =
  | ((key: string) => string | null | undefined)
  | { get(key: string): string | null | undefined };

function read(source: HeaderSource, key: string): string | undefined {
  const value = typeof source === "function" ? source(key) : source.get(key);
  return value === null || value === undefined || value === "" ? undefined : value;
}

/**
 * The namespace carried by a request: `containerd-namespace`, else `containerd-namespace-ttrpc`; `undefined`
 * when neither is set (an empty value counts as unset). The value is not validated.
 */
export function namespaceFromHeaders(source: HeaderSource): string | undefined {
  return read(source, NAMESPACE_HEADER) ?? read(source, TTRPC_NAMESPACE_HEADER);
}

/** The lease carried by a request (`containerd-lease`), or `undefined`. */
export function leaseFromHeaders(source: HeaderSource): string | undefined {
  return read(source, LEASE_HEADER);
}

/**
 * Checks a namespace name: InvalidArgumentError `namespace validation: identifier … : invalid argument` when
 * it is not a valid identifier.
 */
export function validateNamespace(namespace: string): void {
  try {
    validateIdentifier(namespace);
  } catch (err) {
    if (!isInvalidArgument(err)) throw err;
    throw new InvalidArgumentError(`namespace validation: ${stripSuffix((err as Error).message)}`, { cause: err });
  }
}

/**
 * The namespace a call must have (containerd's `namespaces.NamespaceRequired`). Takes the headers (or an
 * already extracted value); throws FailedPreconditionError `namespace is required` when it is missing and
 * InvalidArgumentError `namespace validation: …` when it is not a valid identifier.
 */
export function requireNamespace(source: HeaderSource | string | null | undefined): string {
  const namespace =
    typeof source === "string" || source === null || source === undefined
      ? source || undefined
      : namespaceFromHeaders(source);
  if (namespace === undefined) throw new FailedPreconditionError("namespace is required");
  validateNamespace(namespace);
  return namespace;
}

const INVALID_ARGUMENT_SUFFIX = ": invalid argument";

function stripSuffix(message: string): string {
  return message.endsWith(INVALID_ARGUMENT_SUFFIX) ? message.slice(0, -INVALID_ARGUMENT_SUFFIX.length) : message;
}

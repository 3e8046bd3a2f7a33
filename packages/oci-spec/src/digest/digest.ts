import { createHash, type Hash } from "node:crypto";
import { InvalidArgumentError } from "@berth/errdefs";

/** A content digest, `<algorithm>:<encoded>` (`sha256:e3b0…`). The type alone does not prove validity. */
export type Digest = `${string}:${string}`;

/** The algorithms this package can compute and verify. */
export type DigestAlgorithm = "sha256" | "sha384" | "sha512";

export interface ParsedDigest {
  readonly algorithm: DigestAlgorithm;
  /** Lower-case hex, of the algorithm's length. */
  readonly encoded: string;
}

/** The algorithm used when none is given (go-digest `Canonical`). */
export const CanonicalAlgorithm: DigestAlgorithm = "sha256";

/** Hex lengths of the supported algorithms' encoded part. */
const ENCODED_LENGTH: Readonly<Record<DigestAlgorithm, number>> = { sha256: 64, sha384: 96, sha512: 128 };

export const digestAlgorithms: readonly DigestAlgorithm[] = Object.freeze(
  Object.keys(ENCODED_LENGTH) as DigestAlgorithm[],
);

/** The algorithm grammar of the image-spec descriptor (`algorithm-component (algorithm-separator …)*`). */
const ALGORITHM_RE = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*$/;
/** The encoded grammar for algorithms this package does not know. */
const ENCODED_RE = /^[a-zA-Z0-9=_-]+$/;
const LOWER_HEX_RE = /^[a-f0-9]+$/;

export function isSupportedAlgorithm(algorithm: unknown): algorithm is DigestAlgorithm {
  return typeof algorithm === "string" && Object.hasOwn(ENCODED_LENGTH, algorithm);
}

/** Why `s` is not a valid digest, or undefined when it is one (the checks of go-digest `Digest.Validate`). */
export function digestProblem(s: unknown): string | undefined {
  if (typeof s !== "string") return "digest must be a string";
  const i = s.indexOf(":");
  if (i < 0 || i === s.length - 1) return "invalid checksum digest format";
  const algorithm = s.slice(0, i);
  const encoded = s.slice(i + 1);
  if (!isSupportedAlgorithm(algorithm)) {
    return ALGORITHM_RE.test(algorithm) && ENCODED_RE.test(encoded)
      ? `unsupported digest algorithm "${algorithm}"`
      : "invalid checksum digest format";
  }
  if (encoded.length !== ENCODED_LENGTH[algorithm]) return "invalid checksum digest length";
  if (!LOWER_HEX_RE.test(encoded)) return "invalid checksum digest format";
  return undefined;
}

/** True when `s` is a well-formed digest of a supported algorithm. */
export function isDigest(s: unknown): s is Digest {
  return digestProblem(s) === undefined;
}

/**
 * Splits and validates a digest. Throws InvalidArgumentError (`invalid digest "x": <reason>`) for a wrong
 * format, an unsupported algorithm, a wrong length or characters other than lower-case hex.
 */
export function parseDigest(s: string): ParsedDigest {
  const problem = digestProblem(s);
  if (problem !== undefined) throw new InvalidArgumentError(`invalid digest ${JSON.stringify(s)}: ${problem}`);
  const i = s.indexOf(":");
  return { algorithm: s.slice(0, i) as DigestAlgorithm, encoded: s.slice(i + 1) };
}

function checkAlgorithm(algorithm: string): DigestAlgorithm {
  if (!isSupportedAlgorithm(algorithm)) {
    throw new InvalidArgumentError(`unsupported digest algorithm ${JSON.stringify(algorithm)}`);
  }
  return algorithm;
}

/** The digest of bytes (a string is hashed as UTF-8). */
export function digestOf(data: Uint8Array | string, algorithm: DigestAlgorithm = CanonicalAlgorithm): Digest {
  const alg = checkAlgorithm(algorithm);
  return `${alg}:${createHash(alg).update(data).digest("hex")}`;
}

/** An incremental hasher: feed chunks with `update`, then read `digest()` once. */
export interface Digester {
  readonly algorithm: DigestAlgorithm;
  /** Bytes fed so far. */
  readonly size: number;
  update(chunk: Uint8Array | string): Digester;
  /** Finishes the hash; the digester cannot be updated or read again afterwards. */
  digest(): Digest;
}

export function createDigester(algorithm: DigestAlgorithm = CanonicalAlgorithm): Digester {
  const alg = checkAlgorithm(algorithm);
  const hash: Hash = createHash(alg);
  let size = 0;
  const digester: Digester = {
    algorithm: alg,
    get size() {
      return size;
    },
    update(chunk) {
      hash.update(chunk);
      size += typeof chunk === "string" ? Buffer.byteLength(chunk) : chunk.byteLength;
      return digester;
    },
    digest() {
      return `${alg}:${hash.digest("hex")}`;
    },
  };
  return digester;
}

export type DigestInput = Uint8Array | string | Iterable<Uint8Array> | AsyncIterable<Uint8Array>;

export interface DigestStreamOptions {
  readonly signal?: AbortSignal;
}

/** Digests a whole input (bytes or a stream of chunks) and counts its size. */
export async function digestOfStream(
  input: DigestInput,
  algorithm: DigestAlgorithm = CanonicalAlgorithm,
  options: DigestStreamOptions = {},
): Promise<{ digest: Digest; size: number }> {
  const d = createDigester(algorithm);
  if (typeof input === "string" || input instanceof Uint8Array) {
    d.update(input);
  } else {
    for await (const chunk of input) {
      options.signal?.throwIfAborted();
      d.update(chunk);
    }
  }
  options.signal?.throwIfAborted();
  return { digest: d.digest(), size: d.size };
}

/**
 * True when the input hashes to `expected` (with the expected digest's algorithm). Throws
 * InvalidArgumentError when `expected` is not a valid digest.
 */
export async function verifyDigest(
  input: DigestInput,
  expected: string,
  options: DigestStreamOptions = {},
): Promise<boolean> {
  const { algorithm } = parseDigest(expected);
  const { digest } = await digestOfStream(input, algorithm, options);
  return digest === expected;
}

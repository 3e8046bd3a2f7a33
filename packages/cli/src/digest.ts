/** Digest checks as go-digest's `Digest.Validate` makes them (ctr parses every digest argument first). */
import { CliError } from "./errors.js";

const ENCODED_LENGTH: Readonly<Record<string, number>> = { sha256: 64, sha384: 96, sha512: 128 };
const ANCHORED = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;

/** The go-digest error message for `s`, or `undefined` when it is a valid digest. */
export function digestProblem(s: string): string | undefined {
  const i = s.indexOf(":");
  if (i <= 0 || i + 1 === s.length) return "invalid checksum digest format";
  const algorithm = s.slice(0, i);
  const encoded = s.slice(i + 1);
  const length = ENCODED_LENGTH[algorithm];
  if (length === undefined) {
    return ANCHORED.test(s) ? "unsupported digest algorithm" : "invalid checksum digest format";
  }
  if (encoded.length !== length) return "invalid checksum digest length";
  if (!/^[a-f0-9]+$/.test(encoded)) return "invalid checksum digest format";
  return undefined;
}

/** Returns `s` if it is a valid digest, else throws go-digest's message. */
export function parseDigest(s: string | undefined): string {
  const problem = digestProblem(s ?? "");
  if (problem !== undefined) throw new CliError(problem);
  return s as string;
}

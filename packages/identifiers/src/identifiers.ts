import { InvalidArgumentError, goQuote } from "@berth/errdefs";

/** The longest identifier containerd accepts (namespaces, object IDs, topic components). */
export const MAX_IDENTIFIER_LENGTH = 76;

/** The pattern every identifier must match, as containerd spells it in its error messages. */
export const IDENTIFIER_PATTERN = "^[A-Za-z0-9]+(?:[._-](?:[A-Za-z0-9]+))*$";

const IDENTIFIER_RE = new RegExp(IDENTIFIER_PATTERN);

/**
 * Checks that `s` is a valid containerd identifier: one or more alphanumeric runs joined by single `.`, `_`
 * or `-`, at most 76 characters. Throws InvalidArgumentError with containerd's message otherwise.
 */
export function validateIdentifier(s: string): void {
  if (s.length === 0) throw new InvalidArgumentError("identifier must not be empty");
  // containerd compares the length in bytes, before the pattern.
  if (Buffer.byteLength(s, "utf8") > MAX_IDENTIFIER_LENGTH) {
    throw new InvalidArgumentError(
      `identifier ${goQuote(s)} greater than maximum length (${MAX_IDENTIFIER_LENGTH} characters)`,
    );
  }
  if (!IDENTIFIER_RE.test(s)) {
    throw new InvalidArgumentError(`identifier ${goQuote(s)} must match ${IDENTIFIER_PATTERN}`);
  }
}

/** Whether `s` is a valid identifier (see validateIdentifier), without throwing. */
export function isValidIdentifier(s: string): boolean {
  return s.length > 0 && s.length <= MAX_IDENTIFIER_LENGTH && IDENTIFIER_RE.test(s);
}

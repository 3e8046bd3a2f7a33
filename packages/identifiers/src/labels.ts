import { InvalidArgumentError } from "@berth/errdefs";

/** The largest size, in UTF-8 bytes, of a label's key and value together. */
export const MAX_LABEL_SIZE = 4096;

/** How much of an oversized label's key an error message repeats. */
const KEY_MAX_LEN = 64;

/** Label sets as the metadata layer passes them around. */
export type Labels = Readonly<Record<string, string>> | ReadonlyMap<string, string>;

/**
 * Checks one label: its key and value together must fit in 4096 bytes (UTF-8), else InvalidArgumentError
 * `label key and value length (N bytes) greater than maximum size (4096 bytes), key: <key, first 64 bytes>`.
 */
export function validateLabel(key: string, value: string): void {
  const total = Buffer.byteLength(key, "utf8") + Buffer.byteLength(value, "utf8");
  if (total <= MAX_LABEL_SIZE) return;
  const bytes = Buffer.from(key, "utf8");
  const shown = bytes.length > KEY_MAX_LEN ? bytes.subarray(0, KEY_MAX_LEN).toString("utf8") : key;
  throw new InvalidArgumentError(
    `label key and value length (${total} bytes) greater than maximum size (${MAX_LABEL_SIZE} bytes), key: ${shown}`,
  );
}

/** Checks every label of a set (see validateLabel); `undefined` is an empty set. */
export function validateLabels(labels: Labels | undefined): void {
  if (labels === undefined) return;
  const entries = labels instanceof Map ? labels.entries() : Object.entries(labels);
  for (const [key, value] of entries) validateLabel(key, value);
}

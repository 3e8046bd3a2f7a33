import { InvalidArgumentError, isInvalidArgument } from "@berth/errdefs";
import { parseAll } from "@berth/filters";

/**
 * Applies a `<field>.<key>` field path (`labels.app`) to `target`: the key takes its value in `given`, or goes when
 * `given` has none. Only own properties count, so `labels.constructor` cannot read Object's prototype. False when
 * the path is not under `field`.
 */
export function applyKeyPath<V>(
  target: Record<string, V>,
  given: Readonly<Record<string, V>> | undefined,
  field: string,
  path: string,
): boolean {
  if (!path.startsWith(`${field}.`)) return false;
  const key = path.slice(field.length + 1);
  if (given !== undefined && Object.hasOwn(given, key)) target[key] = given[key] as V;
  else delete target[key];
  return true;
}

/** The entries with a value: as in bolt, a label or annotation with an empty value is not stored. */
export function withoutEmpty(m: Readonly<Record<string, string>>): Record<string, string> {
  return Object.fromEntries(Object.entries(m).filter(([, v]) => v !== ""));
}

/**
 * The filters of a List, parsed; a bad one is InvalidArgument wrapped once more, as containerd's container, image
 * and lease stores do ("filters: parse error: …: invalid argument: invalid argument").
 */
export function parseListFilters(filters: readonly string[]): ReturnType<typeof parseAll> {
  try {
    return parseAll(filters);
  } catch (err) {
    if (isInvalidArgument(err)) {
      throw new InvalidArgumentError(`${(err as Error).message}: invalid argument`, { cause: err, bare: true });
    }
    throw err;
  }
}

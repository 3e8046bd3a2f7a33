// A tiny table-driven validator kit: each Check appends problems for one value at one path.
import type { Problem, ValidationResult } from "../validation.js";

export type Check = (value: unknown, path: string, out: Problem[]) => void;

/** A refinement of an already type-checked value: returns a message when the value is wrong. */
export type Refine<T> = (value: T) => string | undefined;

export interface Field {
  readonly check: Check;
  readonly required: boolean;
  /** Accept JSON null as "absent" (Docker writes `"Cmd": null`). */
  readonly nullable: boolean;
}

export type Shape = Readonly<Record<string, Field>>;
/** A whole-object rule, run after the fields' checks. */
export type ObjectRule = (value: Record<string, unknown>, path: string, out: Problem[]) => void;

export const req = (check: Check): Field => ({ check, required: true, nullable: false });
export const opt = (check: Check): Field => ({ check, required: false, nullable: false });
export const nullable = (check: Check): Field => ({ check, required: false, nullable: true });

const IDENT_RE = /^[A-Za-z_$][A-Za-z0-9_$]*$/;
export const prop = (path: string, key: string): string =>
  IDENT_RE.test(key) ? `${path}.${key}` : `${path}[${JSON.stringify(key)}]`;
export const index = (path: string, i: number): string => `${path}[${i}]`;

export function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  return typeof value;
}

export const isPlainObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value);

function typed<T>(name: string, test: (v: unknown) => v is T, refines: ReadonlyArray<Refine<T>>): Check {
  return (value, path, out) => {
    if (!test(value)) {
      out.push({ path, message: `must be ${name}, got ${describe(value)}` });
      return;
    }
    for (const refine of refines) {
      const message = refine(value);
      if (message !== undefined) {
        out.push({ path, message });
        return;
      }
    }
  };
}

export const str = (...refines: Array<Refine<string>>): Check =>
  typed("a string", (v): v is string => typeof v === "string", refines);

export const bool: Check = typed("a boolean", (v): v is boolean => typeof v === "boolean", []);

export const int = (min: number, max: number, ...refines: Array<Refine<number>>): Check =>
  typed("an integer", (v): v is number => typeof v === "number" && Number.isInteger(v), [
    (n) => (n < min || n > max ? `must be between ${min} and ${max}, got ${n}` : undefined),
    ...refines,
  ]);

// JSON numbers beyond 2^53 lose precision, but their range can still be checked.
export const int32 = int(-(2 ** 31), 2 ** 31 - 1);
export const int64 = int(-(2 ** 63), 2 ** 63 - 1);
export const uint16 = int(0, 2 ** 16 - 1);
export const uint32 = int(0, 2 ** 32 - 1);
export const uint64 = int(0, 2 ** 64 - 1);

export const oneOf =
  (values: readonly string[]): Refine<string> =>
  (s) =>
    values.includes(s)
      ? undefined
      : `must be one of ${values.map((v) => JSON.stringify(v)).join(", ")}, got ${JSON.stringify(s)}`;

export const matches =
  (re: RegExp, what: string): Refine<string> =>
  (s) =>
    re.test(s) ? undefined : `must be ${what}, got ${JSON.stringify(s)}`;

export const nonEmpty: Refine<string> = (s) => (s === "" ? "must not be empty" : undefined);

export const absolutePath: Refine<string> = (s) =>
  s.startsWith("/") ? undefined : `must be an absolute path, got ${JSON.stringify(s)}`;

export const enumOf = (values: readonly string[]): Check => str(oneOf(values));

export interface ArrayOptions {
  readonly minItems?: number;
  /** Items with the same key are reported as duplicates. */
  readonly uniqueBy?: (item: unknown) => string | undefined;
}

export function array(item: Check, options: ArrayOptions = {}): Check {
  return (value, path, out) => {
    if (!Array.isArray(value)) {
      out.push({ path, message: `must be an array, got ${describe(value)}` });
      return;
    }
    if (options.minItems !== undefined && value.length < options.minItems) {
      out.push({ path, message: `must have at least ${options.minItems} item${options.minItems === 1 ? "" : "s"}` });
    }
    const seen = new Map<string, number>();
    value.forEach((v, i) => {
      item(v, index(path, i), out);
      const key = options.uniqueBy?.(v);
      if (key === undefined) return;
      const first = seen.get(key);
      if (first === undefined) seen.set(key, i);
      else out.push({ path: index(path, i), message: `duplicate of ${index(path, first)} (${key})` });
    });
  };
}

/** A JSON object used as a map: every value is checked; keys optionally. */
export function record(valueCheck: Check, keyRefine?: Refine<string>): Check {
  return (value, path, out) => {
    if (!isPlainObject(value)) {
      out.push({ path, message: `must be an object, got ${describe(value)}` });
      return;
    }
    for (const [k, v] of Object.entries(value)) {
      const p = prop(path, k);
      const keyProblem = keyRefine?.(k);
      if (keyProblem !== undefined) out.push({ path: p, message: `invalid key: ${keyProblem}` });
      valueCheck(v, p, out);
    }
  };
}

export const stringMap: Check = record(str());
export const stringArray: Check = array(str());
/** `map[string]struct{}` in Go: values must be objects (normally `{}`). */
export const emptyObjectMap = (keyRefine?: Refine<string>): Check => record(object({}), keyRefine);

/** A JSON object with known fields; unknown fields are allowed, as the OCI specs require. */
export function object(shape: Shape, ...rules: ObjectRule[]): Check {
  return (value, path, out) => {
    if (!isPlainObject(value)) {
      out.push({ path, message: `must be an object, got ${describe(value)}` });
      return;
    }
    for (const [key, field] of Object.entries(shape)) {
      const v = Object.hasOwn(value, key) ? value[key] : undefined;
      if (v === undefined || (v === null && field.nullable)) {
        if (field.required) out.push({ path: prop(path, key), message: "is required" });
        continue;
      }
      field.check(v, prop(path, key), out);
    }
    for (const rule of rules) rule(value, path, out);
  };
}

/** Runs a check lazily, for recursive or late-bound shapes. */
export const lazy =
  (get: () => Check): Check =>
  (value, path, out) =>
    get()(value, path, out);

export function run(check: Check, value: unknown): ValidationResult {
  const problems: Problem[] = [];
  check(value, "$", problems);
  return { ok: problems.length === 0, problems };
}

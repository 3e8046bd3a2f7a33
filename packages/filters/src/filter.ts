/**
 * Maps a field path to the value of a field: `undefined` when the field is absent. How paths map to fields is
 * up to the adaptor; generally protobuf field-path semantics (`target.digest`, `labels.<key>`).
 */
export interface Adaptor {
  field(path: readonly string[]): string | undefined;
}

/** Decides whether an object, seen through an adaptor, is selected. */
export interface Filter {
  match(adaptor: Adaptor): boolean;
}

/** How a selector compares a field: `?` is presence (a selector without operator). */
export type Operator = "?" | "==" | "!=" | "~=";

/** One `<fieldpath>[<operator><value>]` term of a filter. */
export interface Selector extends Filter {
  readonly fieldpath: readonly string[];
  readonly operator: Operator;
  /** The unquoted value; `""` for presence selectors. */
  readonly value: string;
}

/** Matches everything (the empty filter). */
export const always: Filter = Object.freeze({ match: () => true });

/** Matches when any of the filters matches (how separate filter strings combine); none matches nothing. */
export function anyOf(filters: readonly Filter[]): Filter {
  const list = [...filters];
  return { match: (adaptor) => list.some((f) => f.match(adaptor)) };
}

/** Matches when all of the filters match (how comma-separated selectors combine); none matches everything. */
export function allOf(filters: readonly Filter[]): Filter {
  const list = [...filters];
  return { match: (adaptor) => list.every((f) => f.match(adaptor)) };
}

/** Wraps a function as a Filter. */
export function filterFunc(fn: (adaptor: Adaptor) => boolean): Filter {
  return { match: fn };
}

/**
 * Builds a selector. containerd's semantics: `?` is true when the field is present; `==` when it is present
 * and equal; `!=` compares the value read as `""` when absent (so an absent field is "not equal" to any
 * non-empty value); `~=` searches the value (again `""` when absent) with `regexp`.
 */
export function createSelector(
  fieldpath: readonly string[],
  operator: Operator,
  value = "",
  regexp?: RegExp,
): Selector {
  const path = Object.freeze([...fieldpath]);
  if (operator === "~=" && regexp === undefined) throw new TypeError("a ~= selector needs a compiled regexp");
  const match = (adaptor: Adaptor): boolean => {
    const actual = adaptor.field(path);
    switch (operator) {
      case "?":
        return actual !== undefined;
      case "==":
        return actual !== undefined && actual === value;
      case "!=":
        return (actual ?? "") !== value;
      case "~=":
        regexp!.lastIndex = 0;
        return regexp!.test(actual ?? "");
    }
  };
  return Object.freeze({ fieldpath: path, operator, value, match });
}

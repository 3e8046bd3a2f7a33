import { InvalidArgumentError } from "@berth/errdefs";

/**
 * Applies an update to a label set by field paths: `labels` replaces every label, `labels.<key>` sets (or,
 * with an empty or missing value, removes) one label; no paths replace every label. Any other path is
 * InvalidArgument.
 */
export function applyLabelUpdate(
  current: Readonly<Record<string, string>>,
  update: Readonly<Record<string, string>>,
  fieldpaths: readonly string[] | undefined,
): Record<string, string> {
  if (fieldpaths === undefined || fieldpaths.length === 0) return withoutEmpty(update);
  let next: Record<string, string> = { ...current };
  for (const path of fieldpaths) {
    if (path === "labels") {
      next = withoutEmpty(update);
    } else if (path.startsWith("labels.")) {
      const key = path.slice("labels.".length);
      const value = update[key];
      if (value === undefined || value === "") delete next[key];
      else next[key] = value;
    } else {
      throw new InvalidArgumentError(`cannot update ${JSON.stringify(path)} field on content info`);
    }
  }
  return next;
}

function withoutEmpty(labels: Readonly<Record<string, string>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(labels)) if (v !== "") out[k] = v;
  return out;
}

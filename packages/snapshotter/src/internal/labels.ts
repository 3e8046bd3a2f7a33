import { InvalidArgumentError } from "@berth/errdefs";

/**
 * Applies a label update by field paths (containerd's storage UpdateInfo): `labels` replaces every label,
 * `labels.<key>` sets one (an empty or missing value removes it); no paths replace every label. Any other
 * path is InvalidArgument.
 */
export function applyLabelUpdate(
  current: Readonly<Record<string, string>>,
  update: Readonly<Record<string, string>>,
  fieldpaths: readonly string[] | undefined,
  key: string,
): Record<string, string> {
  if (fieldpaths === undefined || fieldpaths.length === 0) return withoutEmpty(update);
  let next: Record<string, string> = { ...current };
  for (const path of fieldpaths) {
    if (path === "labels") {
      next = withoutEmpty(update);
    } else if (path.startsWith("labels.")) {
      const label = path.slice("labels.".length);
      const value = update[label];
      if (value === undefined || value === "") delete next[label];
      else next[label] = value;
    } else {
      throw new InvalidArgumentError(`cannot update ${JSON.stringify(path)} field on snapshot ${JSON.stringify(key)}`);
    }
  }
  return next;
}

export function withoutEmpty(labels: Readonly<Record<string, string>> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(labels ?? {})) if (v !== "") out[k] = v;
  return out;
}

/**
 * Go's `time.MarshalText` form (RFC3339Nano): fractional seconds without trailing zeros, omitted when zero.
 * containerd writes `startedat` and `updatedat` this way.
 */
export function formatRFC3339Nano(date: Date): string {
  const iso = date.toISOString(); // 2006-01-02T15:04:05.000Z
  const base = iso.slice(0, 19);
  const fraction = iso.slice(20, 23).replace(/0+$/, "");
  return fraction === "" ? `${base}Z` : `${base}.${fraction}Z`;
}

const RFC3339_RE = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$/;

/** Parses RFC3339 with up to nine fractional digits (precision beyond milliseconds is dropped). */
export function parseRFC3339Nano(text: string): Date | undefined {
  const m = RFC3339_RE.exec(text.trim());
  if (m === null) return undefined;
  const ms = (m[2] ?? "").padEnd(3, "0").slice(0, 3);
  const t = Date.parse(`${m[1]}.${ms}${m[3]}`);
  return Number.isNaN(t) ? undefined : new Date(t);
}

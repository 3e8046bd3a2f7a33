/** Durations in Go's `time.ParseDuration` syntax (`10s`, `500ms`, `1m30s`, `1.5h`), as ctr's `--timeout` takes them. */

const UNIT_MS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3, // U+00B5 micro sign
  μs: 1e-3, // U+03BC Greek mu
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/**
 * Parses a Go duration into milliseconds. Negative durations are refused (a deadline in the past is of no
 * use to a command). Throws `Error("invalid duration …")` on bad input, with Go's wording.
 */
export function parseDuration(input: string): number {
  const s = input.trim();
  const invalid = () => new Error(`time: invalid duration ${JSON.stringify(input)}`);
  if (s === "0" || s === "+0") return 0;
  if (s === "") throw invalid();
  if (s.startsWith("-")) throw new Error(`invalid duration ${JSON.stringify(input)}: must not be negative`);
  let rest = s.startsWith("+") ? s.slice(1) : s;
  if (rest === "") throw invalid();
  let total = 0;
  const re = /^(\d*)(?:\.(\d*))?([^\d.]+)/u;
  while (rest !== "") {
    const m = re.exec(rest);
    if (!m) throw invalid();
    const [all, whole = "", frac = "", unit = ""] = m;
    if (whole === "" && frac === "") throw invalid();
    const scale = UNIT_MS[unit];
    if (scale === undefined) {
      throw new Error(`time: unknown unit ${JSON.stringify(unit)} in duration ${JSON.stringify(input)}`);
    }
    total += Number(`${whole || "0"}.${frac || "0"}`) * scale;
    rest = rest.slice(all.length);
  }
  return total;
}

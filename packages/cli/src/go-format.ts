/**
 * Go-compatible renderings, so that berth prints what ctr prints: `time.Time.String()`, RFC 3339 with
 * nanoseconds (`time.Time.MarshalJSON`) and `encoding/json` marshalling of containerd's gogo-generated structs.
 */
import type { DescField, DescMessage, Message } from "@bufbuild/protobuf";
import type { Timestamp } from "@bufbuild/protobuf/wkt";

/** A point in time as protobuf carries it. Go's zero time is `seconds = -62135596800`. */
export interface TimeParts {
  readonly seconds: bigint | number;
  readonly nanos: number;
}

export const GO_ZERO_TIME: TimeParts = { seconds: -62135596800n, nanos: 0 };

interface Civil {
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
}

function civilUtc(seconds: bigint): Civil {
  // days since 1970-01-01 and the second within the day, floored for negative times
  const secPerDay = 86400n;
  let days = seconds / secPerDay;
  let rem = seconds % secPerDay;
  if (rem < 0n) {
    rem += secPerDay;
    days -= 1n;
  }
  // Howard Hinnant's civil_from_days
  const z = Number(days) + 719468;
  const era = Math.floor(z / 146097);
  const doe = z - era * 146097;
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36524) - Math.floor(doe / 146096)) / 365);
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const day = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const month = mp < 10 ? mp + 3 : mp - 9;
  const year = yoe + era * 400 + (month <= 2 ? 1 : 0);
  const r = Number(rem);
  return { year, month, day, hour: Math.floor(r / 3600), minute: Math.floor((r % 3600) / 60), second: r % 60 };
}

const pad = (n: number, width: number) => String(n).padStart(width, "0");

function fraction(nanos: number): string {
  if (nanos === 0) return "";
  return `.${pad(nanos, 9).replace(/0+$/, "")}`;
}

function datePart(c: Civil): string {
  const year = c.year < 0 ? `-${pad(-c.year, 4)}` : pad(c.year, 4);
  return `${year}-${pad(c.month, 2)}-${pad(c.day, 2)}`;
}

function timePart(c: Civil): string {
  return `${pad(c.hour, 2)}:${pad(c.minute, 2)}:${pad(c.second, 2)}`;
}

/** Go's `time.Time.String()` of a UTC time: `2006-01-02 15:04:05.999999999 +0000 UTC`. */
export function goTimeString(t: TimeParts | undefined): string {
  const { seconds, nanos } = t ?? GO_ZERO_TIME;
  const c = civilUtc(BigInt(seconds));
  return `${datePart(c)} ${timePart(c)}${fraction(nanos)} +0000 UTC`;
}

/** Go's `time.RFC3339Nano` of a UTC time: `2006-01-02T15:04:05.999999999Z`. */
export function goRfc3339Nano(t: TimeParts | undefined): string {
  const { seconds, nanos } = t ?? GO_ZERO_TIME;
  const c = civilUtc(BigInt(seconds));
  return `${datePart(c)}T${timePart(c)}${fraction(nanos)}Z`;
}

// ---------------------------------------------------------------------------------------------------
// encoding/json

const GO_SHORT_ESCAPES: Record<string, string> = { '"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t" };

/** A JSON string literal as Go's `encoding/json` writes it (HTML-safe, `\u00XX` for other controls). */
export function goJsonString(s: string): string {
  let out = '"';
  for (const ch of s) {
    const short = GO_SHORT_ESCAPES[ch];
    if (short !== undefined) {
      out += short;
      continue;
    }
    const cp = ch.codePointAt(0) ?? 0;
    if (cp < 0x20 || ch === "<" || ch === ">" || ch === "&" || cp === 0x2028 || cp === 0x2029) {
      out += `\\u${cp.toString(16).padStart(4, "0")}`;
    } else if (cp >= 0xd800 && cp <= 0xdfff) {
      out += "\\ufffd"; // a lone surrogate is invalid UTF-8 in Go
    } else {
      out += ch;
    }
  }
  return `${out}"`;
}

function goNumber(n: number): string {
  if (!Number.isFinite(n)) return "null"; // Go fails here; never produced by containerd events
  if (Number.isInteger(n)) return String(n);
  const abs = Math.abs(n);
  if (abs < 1e-6 || abs >= 1e21) {
    // Go uses 'e' format with a two-digit exponent at least: 1e-07
    return n.toExponential().replace(/e([+-])(\d)$/, "e$10$2");
  }
  return String(n);
}

/**
 * Marshals a protobuf-es message as Go's `encoding/json` marshals the matching gogo struct: proto field
 * names (`container_id`), zero values left out (`omitempty`), timestamps as RFC 3339 strings and always
 * present (gogo `stdtime`, non-nullable), bytes as base64, 64-bit integers as plain numbers, enums as numbers,
 * map keys sorted.
 */
export function goJsonMessage(desc: DescMessage, message: Message): string {
  if (desc.typeName === "google.protobuf.Timestamp") {
    return goJsonString(goRfc3339Nano(message as unknown as Timestamp));
  }
  const record = message as unknown as Record<string, unknown>;
  const parts: string[] = [];
  for (const field of desc.fields) {
    let value: unknown;
    if (field.oneof) {
      const oneof = record[field.oneof.localName] as { case?: string; value?: unknown } | undefined;
      if (oneof?.case !== field.localName) continue;
      value = oneof.value;
    } else {
      value = record[field.localName];
    }
    const encoded = goJsonField(field, value);
    if (encoded !== undefined) parts.push(`${goJsonString(field.name)}:${encoded}`);
  }
  return `{${parts.join(",")}}`;
}

/** The encoded value, or `undefined` when `omitempty` leaves it out. */
function goJsonField(field: DescField, value: unknown): string | undefined {
  switch (field.fieldKind) {
    case "scalar":
    case "enum":
      return isEmptyScalar(value) ? undefined : goJsonScalar(value);
    case "message": {
      if (field.message.typeName === "google.protobuf.Timestamp") {
        return goJsonString(goRfc3339Nano((value as Timestamp | undefined) ?? GO_ZERO_TIME));
      }
      if (value === undefined || value === null) return undefined;
      return goJsonMessage(field.message, value as Message);
    }
    case "list": {
      const list = value as readonly unknown[] | undefined;
      if (!list || list.length === 0) return undefined;
      const items = list.map((item) =>
        field.listKind === "message" ? goJsonMessage(field.message, item as Message) : goJsonScalar(item),
      );
      return `[${items.join(",")}]`;
    }
    case "map": {
      const map = value as Record<string, unknown> | undefined;
      const keys = map ? Object.keys(map).sort() : [];
      if (!map || keys.length === 0) return undefined;
      const entries = keys.map((k) => {
        const v = map[k];
        const encoded = field.mapKind === "message" ? goJsonMessage(field.message, v as Message) : goJsonScalar(v);
        return `${goJsonString(k)}:${encoded}`;
      });
      return `{${entries.join(",")}}`;
    }
  }
}

function isEmptyScalar(value: unknown): boolean {
  if (value === undefined || value === null) return true;
  if (value === false || value === 0 || value === 0n || value === "") return true;
  return value instanceof Uint8Array && value.length === 0;
}

function goJsonScalar(value: unknown): string {
  if (typeof value === "string") return goJsonString(value);
  if (typeof value === "bigint") return value.toString();
  if (typeof value === "number") return goNumber(value);
  if (typeof value === "boolean") return value ? "true" : "false";
  if (value instanceof Uint8Array) return goJsonString(Buffer.from(value).toString("base64"));
  return "null";
}

// ---------------------------------------------------------------------------------------------------
// docker/go-units v0.4.0 (what ctr 1.6 links) and Go time layouts in local time

const DECIMAL_ABBRS = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];

/**
 * Go's `%.<precision>g` of a non-negative number below 1e21: `precision` significant digits, trailing zeros
 * removed, ties rounded half to even as `strconv` rounds an exact decimal. Exponent form is never needed for
 * sizes (every value is in [0, 1000]).
 */
export function goFormatG(x: number, precision: number): string {
  if (x === 0) return "0";
  let s = x.toPrecision(precision);
  // toPrecision rounds exact ties up; strconv rounds them to even
  const exact = x.toPrecision(Math.min(100, precision + 30));
  const digits = exact.replace(/^[^1-9]*/, "").replace(".", "");
  if (/^5(0*)$/.test(digits.slice(precision).replace(/e.*$/, ""))) {
    const kept = Number(digits[precision - 1]);
    if (kept % 2 === 0) {
      // round down instead: truncate to `precision` digits
      const e = Math.floor(Math.log10(x));
      const scale = 10 ** (e - precision + 1);
      s = (Math.floor(x / scale) * scale).toPrecision(precision);
    }
  }
  if (s.includes("e")) return s; // not reached for sizes
  return s.includes(".") ? s.replace(/\.?0+$/, "") : s;
}

/** `units.HumanSize`: decimal units with four significant digits, `6B`, `3.146MB`, `1.074GB`. */
export function goHumanSize(size: number): string {
  let i = 0;
  while (size >= 1000 && i < DECIMAL_ABBRS.length - 1) {
    size /= 1000;
    i++;
  }
  return `${goFormatG(size, 4)}${DECIMAL_ABBRS[i]}`;
}

/** `units.HumanDuration` (go-units v0.4.0): `Less than a second`, `5 seconds`, `About an hour`, `3 days`. */
export function goHumanDuration(ms: number): string {
  const seconds = Math.trunc(ms / 1000);
  if (seconds < 1) return "Less than a second";
  if (seconds === 1) return "1 second";
  if (seconds < 60) return `${seconds} seconds`;
  const minutes = Math.trunc(ms / 60_000);
  if (minutes === 1) return "About a minute";
  if (minutes < 60) return `${minutes} minutes`;
  const exactHours = ms / 3_600_000;
  const hours = Math.trunc(exactHours + 0.5);
  if (hours === 1) return "About an hour";
  if (hours < 48) return `${hours} hours`;
  if (hours < 24 * 7 * 2) return `${Math.trunc(hours / 24)} days`;
  if (hours < 24 * 30 * 2) return `${Math.trunc(hours / 24 / 7)} weeks`;
  if (hours < 24 * 365 * 2) return `${Math.trunc(hours / 24 / 30)} months`;
  return `${Math.trunc(Math.trunc(exactHours) / 24 / 365)} years`;
}

/** Milliseconds since the epoch of a protobuf timestamp. */
export function timeMillis(t: TimeParts | undefined): number {
  const { seconds, nanos } = t ?? GO_ZERO_TIME;
  return Number(seconds) * 1000 + Math.trunc(nanos / 1e6);
}

/** Go's `t.Local().Format(time.RFC3339)`: `2006-01-02T15:04:05Z07:00` in the process's time zone. */
export function goRfc3339Local(ms: number): string {
  const d = new Date(ms);
  const offsetMin = -d.getTimezoneOffset();
  const local = civilUtc(BigInt(Math.floor(ms / 1000) + offsetMin * 60));
  let zone = "Z";
  if (offsetMin !== 0) {
    const abs = Math.abs(offsetMin);
    zone = `${offsetMin < 0 ? "-" : "+"}${pad(Math.floor(abs / 60), 2)}:${pad(abs % 60, 2)}`;
  }
  return `${datePart(local)}T${timePart(local)}${zone}`;
}

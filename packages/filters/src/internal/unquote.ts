/**
 * Decodes a quoted field or value: Go string-literal escapes, with `"`, `/` or `|` as the delimiter.
 * `\xNN` and octal escapes produce raw bytes, so the result is decoded as UTF-8 at the end (invalid
 * sequences become U+FFFD). Returns `undefined` on a syntax error ("quote syntax error" in containerd).
 */
export function unquote(text: string): string | undefined {
  if (text.length < 2) return undefined;
  const quote = text[0]!;
  if (text[text.length - 1] !== quote || (quote !== '"' && quote !== "/" && quote !== "|")) return undefined;
  const body = text.slice(1, -1);
  if (body.includes("\n")) return undefined;
  if (!body.includes("\\") && !body.includes(quote)) return body;

  const bytes: number[] = [];
  const pushCodePoint = (cp: number) => {
    const safe = cp >= 0xd800 && cp <= 0xdfff ? 0xfffd : cp;
    bytes.push(...ENCODER.encode(String.fromCodePoint(safe)));
  };
  for (let i = 0; i < body.length; ) {
    const ch = String.fromCodePoint(body.codePointAt(i)!);
    if (ch === quote) return undefined;
    if (ch !== "\\") {
      bytes.push(...ENCODER.encode(ch));
      i += ch.length;
      continue;
    }
    const esc = body[i + 1];
    i += 2;
    switch (esc) {
      case undefined:
        return undefined;
      case "a":
        bytes.push(0x07);
        break;
      case "b":
        bytes.push(0x08);
        break;
      case "f":
        bytes.push(0x0c);
        break;
      case "n":
        bytes.push(0x0a);
        break;
      case "r":
        bytes.push(0x0d);
        break;
      case "t":
        bytes.push(0x09);
        break;
      case "v":
        bytes.push(0x0b);
        break;
      case "\\":
        bytes.push(0x5c);
        break;
      case "x":
      case "u":
      case "U": {
        const n = esc === "x" ? 2 : esc === "u" ? 4 : 8;
        const digits = body.slice(i, i + n);
        if (!new RegExp(`^[0-9A-Fa-f]{${n}}$`).test(digits)) return undefined;
        i += n;
        const v = Number.parseInt(digits, 16);
        if (esc === "x") bytes.push(v);
        else if (v > 0x10ffff) return undefined;
        else pushCodePoint(v);
        break;
      }
      case "0":
      case "1":
      case "2":
      case "3":
      case "4":
      case "5":
      case "6":
      case "7": {
        const digits = esc + body.slice(i, i + 2);
        if (!/^[0-7]{3}$/.test(digits)) return undefined;
        i += 2;
        const v = Number.parseInt(digits, 8);
        if (v > 255) return undefined;
        bytes.push(v);
        break;
      }
      default:
        if (esc !== quote) return undefined;
        bytes.push(esc.charCodeAt(0));
    }
  }
  return DECODER.decode(new Uint8Array(bytes));
}

const ENCODER = new TextEncoder();
const DECODER = new TextDecoder("utf-8");

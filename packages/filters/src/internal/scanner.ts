/**
 * Tokenizer for the filter language. Positions are UTF-16 offsets into the input.
 *
 * Like containerd's scanner, it skips whitespace in front of a token but not in the raw lookahead
 * (`peekChar`) the parser uses between tokens, and it switches to "value" mode after an operator, so the
 * text after `==` is read as a value (anything up to `,` or whitespace) rather than as a field.
 */

export type TokenKind = "eof" | "quoted" | "value" | "field" | "separator" | "operator" | "illegal" | "char";

export interface Token {
  readonly kind: TokenKind;
  readonly pos: number;
  readonly text: string;
  /** Why an `illegal` token is illegal. */
  readonly error?: string;
}

const WHITESPACE = /^\p{White_Space}$/u;
const VALUE_CHAR = /^[\p{L}\p{M}\p{N}\p{P}\p{S}\p{Zs}]$/u;

export const isQuoteChar = (ch: string): boolean => ch === '"' || ch === "/" || ch === "|";
const isSeparatorChar = (ch: string): boolean => ch === "," || ch === ".";
const isOperatorChar = (ch: string): boolean => ch === "=" || ch === "!" || ch === "~";
const isFieldChar = (ch: string): boolean => /^[A-Za-z0-9_-]$/.test(ch);
const isValueChar = (ch: string): boolean => ch !== "," && !WHITESPACE.test(ch) && VALUE_CHAR.test(ch);
const isDigit = (ch: string | undefined, base: 8 | 16): boolean =>
  ch !== undefined && (base === 8 ? /^[0-7]$/.test(ch) : /^[0-9A-Fa-f]$/.test(ch));

const SIMPLE_ESCAPES = new Set(["a", "b", "f", "n", "r", "t", "v", "\\"]);

export class Scanner {
  #offset = 0;
  #valueMode = false;

  constructor(readonly input: string) {}

  /** Offset of the next unread character. */
  get offset(): number {
    return this.#offset;
  }

  /** The next character without consuming it or skipping whitespace; `undefined` at the end. */
  peekChar(): string | undefined {
    return this.#charAt(this.#offset);
  }

  scan(): Token {
    let ch = this.peekChar();
    while (ch !== undefined && WHITESPACE.test(ch)) {
      this.#offset += ch.length;
      ch = this.peekChar();
    }
    const pos = this.#offset;
    if (ch === undefined) return { kind: "eof", pos, text: "" };
    this.#offset += ch.length;

    if (ch === "\0") return { kind: "illegal", pos, text: ch, error: "unexpected null" };
    if (ch.length === 1 && ch >= "\ud800" && ch <= "\udfff") {
      return { kind: "illegal", pos, text: ch, error: "rune error" };
    }
    if (isQuoteChar(ch)) return this.#scanQuoted(ch, pos);
    if (isSeparatorChar(ch)) {
      this.#valueMode = false;
      return { kind: "separator", pos, text: ch };
    }
    if (isOperatorChar(ch)) {
      this.#consumeWhile(isOperatorChar);
      this.#valueMode = true;
      return { kind: "operator", pos, text: this.input.slice(pos, this.#offset) };
    }
    if (this.#valueMode) {
      this.#consumeWhile(isValueChar);
      this.#valueMode = false;
      return { kind: "value", pos, text: this.input.slice(pos, this.#offset) };
    }
    if (isFieldChar(ch)) {
      this.#consumeWhile(isFieldChar);
      return { kind: "field", pos, text: this.input.slice(pos, this.#offset) };
    }
    return { kind: "char", pos, text: ch };
  }

  #charAt(offset: number): string | undefined {
    if (offset >= this.input.length) return undefined;
    const cp = this.input.codePointAt(offset)!;
    return String.fromCodePoint(cp);
  }

  #consumeWhile(pred: (ch: string) => boolean): void {
    for (let ch = this.peekChar(); ch !== undefined && pred(ch); ch = this.peekChar()) this.#offset += ch.length;
  }

  #scanQuoted(quote: string, pos: number): Token {
    let error: string | undefined;
    const fail = (msg: string) => {
      error ??= msg;
    };
    for (;;) {
      const ch = this.peekChar();
      if (ch === undefined || ch === "\n") {
        if (ch === "\n") this.#offset += 1;
        return {
          kind: "illegal",
          pos,
          text: this.input.slice(pos, this.#offset),
          error: error ?? "quoted literal not terminated",
        };
      }
      this.#offset += ch.length;
      if (ch === quote) break;
      if (ch !== "\\") continue;

      const esc = this.peekChar();
      if (esc === undefined || esc === "\n") continue; // reported as not terminated on the next turn
      if (SIMPLE_ESCAPES.has(esc) || esc === quote) {
        this.#offset += esc.length;
      } else if (isDigit(esc, 8)) {
        if (!this.#consumeDigits(8, 3)) fail("illegal numeric escape sequence");
      } else if (esc === "x" || esc === "u" || esc === "U") {
        this.#offset += 1;
        if (!this.#consumeDigits(16, esc === "x" ? 2 : esc === "u" ? 4 : 8)) fail("illegal numeric escape sequence");
      } else {
        this.#offset += esc.length;
        fail("illegal escape sequence");
      }
    }
    const text = this.input.slice(pos, this.#offset);
    return error === undefined ? { kind: "quoted", pos, text } : { kind: "illegal", pos, text, error };
  }

  #consumeDigits(base: 8 | 16, count: number): boolean {
    for (let i = 0; i < count; i++) {
      if (!isDigit(this.peekChar(), base)) return false;
      this.#offset += 1;
    }
    return true;
  }
}

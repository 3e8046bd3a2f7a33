import { type BerthError, InvalidArgumentError, goQuote } from "@berth/errdefs";
import { type Filter, type Operator, type Selector, allOf, always, anyOf, createSelector } from "./filter.js";
import { compileGoRegexp } from "./internal/go-regexp.js";
import { Scanner, type Token } from "./internal/scanner.js";
import { unquote } from "./internal/unquote.js";

/**
 * Parses one filter string:
 *
 * ```
 * filters   := selector ("," selector)*
 * selector  := fieldpath (operator value)?
 * fieldpath := field ("." field)*
 * field     := quoted | [A-Za-z0-9_-]+
 * operator  := "==" | "!=" | "~="
 * value     := quoted | [^\s,]+
 * quoted    := "…" with Go escapes; after ~= also /…/ or |…|
 * ```
 *
 * All selectors must match. The empty string matches everything. A syntax error, or a `~=` value that is not
 * a valid regular expression, throws InvalidArgumentError
 * `filters: parse error: [<before> >|<char>|< <after>]: <reason>: invalid argument`.
 */
export function parse(input: string): Filter {
  if (input === "") return always;
  return allOf(parseSelectors(input));
}

/**
 * Parses several filter strings; the result matches when any of them matches. No strings match everything.
 * Errors as in `parse`.
 */
export function parseAll(inputs: readonly string[]): Filter {
  if (inputs.length === 0) return always;
  const filters = inputs.map(parse);
  return filters.length === 1 ? filters[0]! : anyOf(filters);
}

/** The selectors of a non-empty filter string, for callers that inspect them (errors as in `parse`). */
export function parseSelectors(input: string): Selector[] {
  if (input === "") return [];
  return new Parser(input).selectors();
}

class Parser {
  readonly #scanner: Scanner;

  constructor(readonly input: string) {
    this.#scanner = new Scanner(input);
  }

  selectors(): Selector[] {
    const list = [this.#selector()];
    for (;;) {
      const next = this.#scanner.peekChar();
      if (next === undefined) return list;
      if (next !== ",") throw this.#error(this.#scanner.offset, `unexpected input: ${next}`);
      this.#scanner.scan();
      list.push(this.#selector());
    }
  }

  #selector(): Selector {
    const fieldpath = this.#fieldpath();
    const next = this.#scanner.peekChar();
    if (next === undefined || next === ",") return createSelector(fieldpath, "?");

    const operator = this.#operator();
    const token = this.#scanner.scan();
    let value: string;
    switch (token.kind) {
      case "value":
      case "field":
        value = token.text;
        break;
      case "quoted":
        value = this.#unquote(token, operator === "~=");
        break;
      case "illegal":
        throw this.#error(token.pos, token.error!);
      default:
        throw this.#error(token.pos, "expected value or quoted");
    }
    if (operator !== "~=") return createSelector(fieldpath, operator, value);
    let regexp: RegExp;
    try {
      regexp = compileGoRegexp(value);
    } catch (err) {
      throw this.#error(token.pos, `invalid regexp ${goQuote(value)}: ${(err as Error).message}`, err);
    }
    return createSelector(fieldpath, operator, value, regexp);
  }

  #fieldpath(): string[] {
    const path = [this.#field()];
    while (this.#scanner.peekChar() === ".") {
      this.#scanner.scan();
      path.push(this.#field());
    }
    return path;
  }

  #field(): string {
    const token = this.#scanner.scan();
    switch (token.kind) {
      case "field":
        return token.text;
      case "quoted":
        return this.#unquote(token, false);
      case "illegal":
        throw this.#error(token.pos, token.error!);
      default:
        throw this.#error(token.pos, "expected field or quoted");
    }
  }

  #operator(): Exclude<Operator, "?"> {
    const token = this.#scanner.scan();
    if (token.kind === "operator") {
      if (token.text === "==" || token.text === "!=" || token.text === "~=") return token.text;
      throw this.#error(token.pos, `unsupported operator ${goQuote(token.text)}`);
    }
    if (token.kind === "illegal") throw this.#error(token.pos, token.error!);
    throw this.#error(token.pos, 'expected an operator ("=="|"!="|"~=")');
  }

  #unquote(token: Token, allowRegexpQuotes: boolean): string {
    if (!allowRegexpQuotes && token.text[0] !== '"') throw this.#error(token.pos, "invalid quote encountered");
    const value = unquote(token.text);
    if (value === undefined) throw this.#error(token.pos, "unquoting failed: quote syntax error");
    return value;
  }

  #error(pos: number, reason: string, cause?: unknown): BerthError {
    const { input } = this;
    let where: string;
    if (pos < input.length) {
      const ch = String.fromCodePoint(input.codePointAt(pos)!);
      where = `[${input.slice(0, pos)} >|${ch}|< ${input.slice(pos + ch.length)}]`;
    } else {
      where = `[${input}]`;
    }
    return new InvalidArgumentError(`filters: parse error: ${where}: ${reason}`, { cause });
  }
}

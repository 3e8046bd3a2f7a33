/**
 * Compiles a Go (RE2) regular expression as a JavaScript RegExp with the `u` flag. The common RE2-only
 * syntax is rewritten: a leading `(?flags)` group (i, m, s), `(?P<name>`, `\A`, `\z`, `\Q…\E`, `\x{…}`,
 * one-letter `\pL` / `\PL`, `[[:alpha:]]`-style classes inside brackets, and `\` before punctuation.
 * Throws a SyntaxError (with Go's pattern in the message) when the pattern cannot be compiled.
 */
export function compileGoRegexp(pattern: string): RegExp {
  let flags = "u";
  let src = pattern;
  const lead = /^\(\?([imsU]+)\)/.exec(src);
  if (lead) {
    for (const f of new Set(lead[1]!)) {
      if (f === "U") throw new SyntaxError(`invalid or unsupported Perl syntax: (?U) in ${pattern}`);
      flags += f;
    }
    src = src.slice(lead[0].length);
  }
  return new RegExp(translate(src), flags);
}

const POSIX_CLASSES: Record<string, string> = {
  alnum: "0-9A-Za-z",
  alpha: "A-Za-z",
  ascii: "\\x00-\\x7F",
  blank: "\\t ",
  cntrl: "\\x00-\\x1F\\x7F",
  digit: "0-9",
  graph: "!-~",
  lower: "a-z",
  print: " -~",
  punct: "!-\\/:-@\\[-`{-~",
  space: "\\t\\n\\v\\f\\r ",
  upper: "A-Z",
  word: "0-9A-Za-z_",
  xdigit: "0-9A-Fa-f",
};

// Characters JavaScript accepts after `\` in `u` mode (inside a class `-` too).
const JS_SYNTAX = new Set("^$\\.*+?()[]{}|/".split(""));
const ASCII_PUNCT = /^[!-/:-@[-`{-~]$/;

function escapeLiteral(ch: string): string {
  return JS_SYNTAX.has(ch) || ch === "-" ? `\\${ch}` : ch;
}

function translate(src: string): string {
  let out = "";
  let inClass = false;
  for (let i = 0; i < src.length; ) {
    const ch = src[i]!;
    if (ch === "\\") {
      const next = src[i + 1];
      if (next === undefined) return out + "\\"; // let RegExp report the trailing backslash
      if (next === "Q") {
        const end = src.indexOf("\\E", i + 2);
        const literal = end < 0 ? src.slice(i + 2) : src.slice(i + 2, end);
        out += Array.from(literal, escapeLiteral).join("");
        i = end < 0 ? src.length : end + 2;
        continue;
      }
      if (!inClass && next === "A") {
        out += "(?<![\\s\\S])";
        i += 2;
        continue;
      }
      if (!inClass && next === "z") {
        out += "(?![\\s\\S])";
        i += 2;
        continue;
      }
      if (next === "x" && src[i + 2] === "{") {
        const end = src.indexOf("}", i + 3);
        if (end > 0) {
          out += `\\u{${src.slice(i + 3, end)}}`;
          i = end + 1;
          continue;
        }
      }
      if ((next === "p" || next === "P") && src[i + 2] !== "{" && src[i + 2] !== undefined) {
        out += `\\${next}{${src[i + 2]}}`;
        i += 3;
        continue;
      }
      if (ASCII_PUNCT.test(next)) {
        out += JS_SYNTAX.has(next) || (inClass && next === "-") ? `\\${next}` : next;
        i += 2;
        continue;
      }
      out += `\\${next}`;
      i += 2;
      continue;
    }
    if (inClass) {
      if (ch === "[" && src[i + 1] === ":") {
        const m = /^\[:(\^?)([a-z]+):\]/.exec(src.slice(i));
        const cls = m ? POSIX_CLASSES[m[2]!] : undefined;
        if (m && cls !== undefined) {
          if (m[1] === "^") throw new SyntaxError(`negated POSIX class [:^${m[2]}:] is not supported`);
          out += cls;
          i += m[0].length;
          continue;
        }
      }
      if (ch === "]") inClass = false;
      out += ch === "[" ? "\\[" : ch;
      i += 1;
      continue;
    }
    if (ch === "[") {
      inClass = true;
      out += ch;
      i += 1;
      if (src[i] === "^") {
        out += "^";
        i += 1;
      }
      if (src[i] === "]") {
        // a leading `]` is literal in RE2
        out += "\\]";
        i += 1;
      }
      continue;
    }
    if (ch === "(" && src.startsWith("(?P<", i)) {
      out += "(?<";
      i += 4;
      continue;
    }
    out += ch;
    i += 1;
  }
  return out;
}

import { isInvalidArgument } from "@berth/errdefs";
import { describe, expect, it } from "vitest";
import { adaptObject, parse } from "../src/index.js";

const matches = (pattern: string, value: string | undefined): boolean =>
  parse(`v~=${pattern}`).match(adaptObject({ v: value }));

describe("~= regular expressions (Go RE2 syntax)", () => {
  const cases: Array<[string, string | undefined, boolean]> = [
    ["abc", "xxabcxx", true], // unanchored search, like Go's MatchString
    ["^abc$", "xxabcxx", false],
    ["^abc$", "abc", true],
    ["/^a.c$/", "a😀c", true], // `.` is one code point
    ["/(?i)^ABC$/", "abc", true],
    ["/(?i)^ABC$/", "abd", false],
    ["/(?s)a.b/", "a\nb", true],
    ["/a.b/", "a\nb", false],
    ["/(?m)^b$/", "a\nb\nc", true],
    ["/^b$/", "a\nb\nc", false],
    ["/(?P<word>ab)c/", "abc", true],
    ["/\\\\Aab/", "abc", true],
    ["/\\\\Aab/", "cab", false],
    ["/bc\\\\z/", "abc", true],
    ["/bc\\\\z/", "bcd", false],
    ["/(?m)b\\\\z/", "ab\nc", false],
    ["/\\\\Qa.b\\\\E/", "a.b", true],
    ["/\\\\Qa.b\\\\E/", "axb", false],
    ["/\\\\x{41}/", "A", true],
    ["/^\\\\pL+$/", "héllo", true],
    ["/^\\\\pL+$/", "h3llo", false],
    ["/^[[:digit:]]+$/", "0123", true],
    ["/^[[:alpha:][:digit:]]+$/", "abc123", true],
    ["/^[[:alpha:]]+$/", "abc123", false],
    ["/a\\\\#b\\\\:c/", "a#b:c", true],
    ["/a\\\\-b/", "a-b", true],
    ["/[a\\\\-z]/", "-", true],
    ["/[]a]/", "]", true],
    ["sha256:[0-9a-f]+", "sha256:abc123", true],
    ["/^\\\\d+$/", "42", true], // a doubled backslash reaches the regexp as \d
    ["^\\d+$", "42", true], // unquoted: the backslash is kept as typed
    ["^$", undefined, true], // an absent field is matched as ""
    ["/./", undefined, false],
    ["[abc]\\+", "a+", true], // unquoted values keep their backslashes
  ];
  // Patterns are filter source: `\\\\` in the TS literal is `\\` in the filter, one backslash once unquoted.
  it.each(cases)("%s on %j → %s", (p, v, expected) => {
    expect(matches(p, v)).toBe(expected);
  });

  it("unquoted patterns run to the next comma", () => {
    const f = parse("v~=^a+$,w==x");
    expect(f.match(adaptObject({ v: "aaa", w: "x" }))).toBe(true);
    expect(f.match(adaptObject({ v: "aab", w: "x" }))).toBe(false);
  });

  it("compiles once, at parse time", () => {
    const f = parse("v~=^a");
    for (let i = 0; i < 3; i++) expect(f.match(adaptObject({ v: "abc" }))).toBe(true);
  });

  it.each([
    ["v~=[", "[v~= >|[|< ]"],
    ["v~=(", "[v~= >|(|< ]"],
    ["v~=a{2", null],
    ["v~=/(?U)a+/", "[v~= >|/|< (?U)a+/]"],
    ["v~=/[[:^alpha:]]/", "[v~= >|/|< [[:^alpha:]]/]"],
    ["v~=/\\\\p{Greek}/", "[v~= >|/|< \\\\p{Greek}/]"], // RE2 script name, not translated
    ["v~=/\\d/", "[v~= >|/|< \\d/]"], // containerd's scanner rejects \d inside a quoted literal
  ])("invalid pattern %j is an InvalidArgument at parse time", (input, where) => {
    let caught: unknown;
    try {
      parse(input);
    } catch (err) {
      caught = err;
    }
    if (where === null) {
      // RE2 would accept `a{2` as a literal; JavaScript's `u` mode rejects it. Either way no crash at match time.
      if (caught !== undefined) expect(isInvalidArgument(caught)).toBe(true);
      return;
    }
    expect(isInvalidArgument(caught)).toBe(true);
    expect((caught as Error).message.startsWith(`filters: parse error: ${where}: `)).toBe(true);
  });
});

import { isInvalidArgument } from "@berth/errdefs";
import { describe, expect, it } from "vitest";
import { type Adaptor, adaptLabels, adaptObject, parse, parseAll, parseSelectors } from "../src/index.js";

interface Entry {
  name?: string;
  other?: string;
  labels?: Record<string, string>;
}

const corpus: Entry[] = [
  /* 0 */ { name: "alpha", labels: { env: "prod" } },
  /* 1 */ { name: "beta" },
  /* 2 */ { name: "alpha", labels: { env: "dev", "team name": "core" } },
  /* 3 */ { name: "beta", labels: { tier: "backend" } },
  /* 4 */ { name: "gamma", labels: { 'tricky \\ "key"': "yes" } },
  /* 5 */ { name: "gamma", labels: { 'tricky \\ "key".sub': "yes" } },
  /* 6 */ { name: "delta", other: "has, a comma" },
  /* 7 */ { name: "epsilon", other: "cab" },
  /* 8 */ { name: "zeta", labels: { env: "x_y.z-w", "containerd.io/gc.root": "2024" } },
  /* 9 */ { labels: { "a.b": "dotted" } },
];

const adapt = (e: Entry): Adaptor =>
  adaptObject({ name: e.name || undefined, other: e.other || undefined, labels: adaptLabels(e.labels) });

const select = (input: string): number[] => {
  const f = parse(input);
  return corpus.flatMap((e, i) => (f.match(adapt(e)) ? [i] : []));
};
const all = corpus.map((_, i) => i);

describe("parse: matching", () => {
  const cases: Array<[string, string, number[]]> = [
    ["empty string", "", all],
    ["presence of name", "name", [0, 1, 2, 3, 4, 5, 6, 7, 8]],
    ["presence of a label", "labels.env", [0, 2, 8]],
    ["two presence selectors", "labels.env,name", [0, 2, 8]],
    ["label value", "labels.env==prod", [0]],
    ["punctuated unquoted value", "labels.env==x_y.z-w", [8]],
    ["equality", "name==beta", [1, 3]],
    ["inequality", "name!=beta", [0, 2, 4, 5, 6, 7, 8, 9]],
    ["inequality of an absent field is true", "other!=cab", [0, 1, 2, 3, 4, 5, 6, 8, 9]],
    ["inequality with empty value is false for absent fields", 'other!=""', [6, 7]],
    ["equality with empty value never matches an absent field", 'other==""', []],
    ["and of two selectors", "name==beta,labels.tier", [3]],
    ["and with no match", "name==beta,labels.tier==frontend", []],
    ["quoted value with a comma", 'other=="has, a comma"', [6]],
    ["regexp", "other~=[abc]+,name!=alpha", [6, 7]],
    ["regexp quoted with slashes", "other~=/^c.b$/", [7]],
    ["regexp quoted with pipes", "other~=|a{1,2}|", [6, 7]],
    ["regexp with a comma inside slashes", "name~=/^[a-z]{4,5}$/", [0, 1, 2, 3, 4, 5, 6, 8]],
    ["regexp on an absent field sees an empty string", "other~=^$", [0, 1, 2, 3, 4, 5, 8, 9]],
    ["regexp garbage that never matches", 'other~=/[abc]{0,1}"\\//,name!=foo', []],
    ["quoted field path", 'name==alpha,labels."team name"', [2]],
    ["quoted field path with escapes", 'labels."tricky \\\\ \\"key\\""==yes', [4]],
    ["quoted field then more path", 'labels."tricky \\\\ \\"key\\"".sub==yes', [5]],
    ["label with a slash must be quoted", 'labels."containerd.io/gc.root"', [8]],
    ["label with dots, quoted", 'labels."a.b"==dotted', [9]],
    ["label with dots, unquoted path", "labels.a.b==dotted", [9]],
    ["whitespace before a selector", "  name==beta", [1, 3]],
    ["whitespace around the operator", "name == beta", [1, 3]],
    ["whitespace after a comma", "name==beta, labels.tier", [3]],
    ["unicode value", "name~=ä", []],
    ["field names may start with digits and contain - and _", "0-a_b", []],
    ["unknown field", "nope", []],
  ];
  it.each(cases)("%s: %s", (_name, input, expected) => {
    expect(select(input)).toEqual(expected);
  });
});

describe("parse: errors", () => {
  const cases: Array<[string, string]> = [
    ["labels.|foo|==x", "[labels. >|||< foo|==x]: invalid quote encountered"],
    ["name==/foo/", "[name== >|/|< foo/]: invalid quote encountered"],
    ['labels.?"x".post==present', '[labels. >|?|< "x".post==present]: expected field or quoted'],
    ["name==foo,", "[name==foo,]: expected field or quoted"],
    ["labels.", "[labels.]: expected field or quoted"],
    [",", "[ >|,|< ]: expected field or quoted"],
    ["image~=,id?=?fbaq", "[image~= >|,|< id?=?fbaq]: expected value or quoted"],
    ["name==", "[name==]: expected value or quoted"],
    ["name== ", "[name== ]: expected value or quoted"],
    ["name==.x", "[name== >|.|< x]: expected value or quoted"],
    ["labels.ns/key==value", "[labels.ns >|/|< key==value]: quoted literal not terminated"],
    ["labels.containerd.io/key==value", "[labels.containerd.io >|/|< key==value]: quoted literal not terminated"],
    ["labels.key==/value", "[labels.key== >|/|< value]: quoted literal not terminated"],
    ['labels."a\nb"==x', '[labels. >|"|< a\nb"==x]: quoted literal not terminated'],
    ['labels."\\g"', '[labels. >|"|< \\g"]: illegal escape sequence'],
    ['labels."\\xaz"', '[labels. >|"|< \\xaz"]: illegal numeric escape sequence'],
    ['labels."\\u12"', '[labels. >|"|< \\u12"]: illegal numeric escape sequence'],
    ['labels."\\/"', '[labels. >|"|< \\/"]: illegal escape sequence'],
    ['labels."\\400"', '[labels. >|"|< \\400"]: unquoting failed: quote syntax error'],
    ["name~=/\\d+/", "[name~= >|/|< \\d+/]: illegal escape sequence"],
    ["name=foo", '[name >|=|< foo]: unsupported operator "="'],
    ["name===foo", '[name >|=|< ==foo]: unsupported operator "==="'],
    ["a==!x", '[a >|=|< =!x]: unsupported operator "==!"'],
    ["name~foo", '[name >|~|< foo]: unsupported operator "~"'],
    ["name ,x", '[name  >|,|< x]: expected an operator ("=="|"!="|"~=")'],
    ["name==foo ", "[name==foo >| |< ]: unexpected input:  "],
    ['name=="foo"bar', '[name=="foo" >|b|< ar]: unexpected input: b'],
    ["name==foo bar", "[name==foo >| |< bar]: unexpected input:  "],
    ["foo\u0000bar", "[foo >|\u0000|< bar]: unexpected null"],
    ["name==x\u0000", "[name==x >|\u0000|< ]: unexpected input: \u0000"],
    ["\u0000", "[ >|\u0000|< ]: unexpected null"],
    ["na$me", '[na >|$|< me]: expected an operator ("=="|"!="|"~=")'],
    ["name~=[", '[name~= >|[|< ]: invalid regexp "[": '],
    ["name~=/a(b/", '[name~= >|/|< a(b/]: invalid regexp "a(b": '],
  ];
  it.each(cases)("%j", (input, where) => {
    let caught: unknown;
    try {
      parse(input);
    } catch (err) {
      caught = err;
    }
    expect(isInvalidArgument(caught)).toBe(true);
    const message = (caught as Error).message;
    if (where.endsWith(": ")) {
      expect(message.startsWith(`filters: parse error: ${where}`)).toBe(true);
    } else {
      expect(message).toBe(`filters: parse error: ${where}: invalid argument`);
    }
  });
});

describe("quoting", () => {
  const value = (input: string): string => {
    const [selector] = parseSelectors(input);
    return selector!.value;
  };
  const fieldpath = (input: string): readonly string[] => parseSelectors(input)[0]!.fieldpath;

  it.each([
    ['a=="plain"', "plain"],
    ['a=="with space, and comma"', "with space, and comma"],
    ['a=="tab\\tnewline\\n"', "tab\tnewline\n"],
    ['a=="\\a\\b\\f\\r\\v"', "\x07\b\f\r\v"],
    ['a=="back\\\\slash"', "back\\slash"],
    ['a=="quote\\"inside"', 'quote"inside'],
    ['a=="\\101\\102"', "AB"],
    ['a=="\\x41"', "A"],
    ['a=="\\xc3\\xa9"', "é"],
    ['a=="\\u00e9"', "é"],
    ['a=="\\U0001F600"', "😀"],
    ['a=="日本"', "日本"],
    ['a==""', ""],
    ["a~=/a\\/b/", "a/b"],
    ["a~=/a|b/", "a|b"],
    ["a~=|a/b|", "a/b"],
    ["a~=|a\\|b|", "a|b"],
    ['a~=/"/', '"'],
    ['a~="x"', "x"],
    ["a==x=y", "x=y"],
    ["a==x!", "x!"],
    ["a==x$", "x$"],
    ["a==sha256:abc", "sha256:abc"],
    ["a==docker.io/library/busybox:latest", "docker.io/library/busybox:latest"],
    ["a==ü-ß", "ü-ß"],
    ["a==unquoted\\n", "unquoted\\n"],
    ["a~=[abc]\\+", "[abc]\\+"],
  ])("%s → %j", (input, expected) => {
    expect(value(input)).toBe(expected);
  });

  it("quoted fields", () => {
    expect(fieldpath('labels."a.b"')).toEqual(["labels", "a.b"]);
    expect(fieldpath('"leading quote".post==v')).toEqual(["leading quote", "post"]);
    expect(fieldpath('labels."\\u00e9t\\u00e9"')).toEqual(["labels", "été"]);
    expect(fieldpath("a.b.c")).toEqual(["a", "b", "c"]);
  });
});

describe("parseSelectors", () => {
  it("returns the selectors of a filter", () => {
    const selectors = parseSelectors('name==foo,labels."a.b",x!=1,y~=/z/');
    expect(selectors.map((s) => [s.fieldpath, s.operator, s.value])).toEqual([
      [["name"], "==", "foo"],
      [["labels", "a.b"], "?", ""],
      [["x"], "!=", "1"],
      [["y"], "~=", "z"],
    ]);
    expect(parseSelectors("")).toEqual([]);
  });
});

describe("parseAll", () => {
  const names = (inputs: string[]): number[] => {
    const f = parseAll(inputs);
    return corpus.flatMap((e, i) => (f.match(adapt(e)) ? [i] : []));
  };

  it.each<[string[], number[]]>([
    [[], all],
    [[""], all],
    [["name==beta"], [1, 3]],
    [
      ["name==beta", "name==gamma"],
      [1, 3, 4, 5],
    ],
    [
      ["name==beta,labels.tier", "labels.env==prod"],
      [0, 3],
    ],
    [["name==nope", ""], all],
    [["name==nope", "name==none"], []],
  ])("%j", (inputs, expected) => {
    expect(names(inputs)).toEqual(expected);
  });

  it("throws InvalidArgument if any entry is invalid", () => {
    expect(() => parseAll(["name==beta", "name=="])).toThrow(
      "filters: parse error: [name==]: expected value or quoted",
    );
    try {
      parseAll(["", "labels."]);
    } catch (err) {
      expect(isInvalidArgument(err)).toBe(true);
    }
  });
});

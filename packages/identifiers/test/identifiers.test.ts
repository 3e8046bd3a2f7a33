import { isFailedPrecondition, isInvalidArgument } from "@berth/errdefs";
import { describe, expect, it } from "vitest";
import {
  DEFAULT_NAMESPACE,
  IDENTIFIER_PATTERN,
  LEASE_HEADER,
  MAX_IDENTIFIER_LENGTH,
  MAX_LABEL_SIZE,
  NAMESPACE_HEADER,
  TTRPC_NAMESPACE_HEADER,
  isValidIdentifier,
  leaseFromHeaders,
  namespaceFromHeaders,
  requireNamespace,
  validateIdentifier,
  validateLabel,
  validateLabels,
  validateNamespace,
  validateTopic,
} from "../src/index.js";

function thrown(fn: () => unknown): Error {
  try {
    fn();
  } catch (err) {
    return err as Error;
  }
  throw new Error("expected a throw");
}

describe("validateIdentifier", () => {
  const valid = [
    "a",
    "A",
    "0",
    "default",
    "k8s.io",
    "moby",
    "foo-bar_baz.qux",
    "a.b.c",
    "a-b-c",
    "a_b_c",
    "0123456789",
    "ABCxyz09",
    "a".repeat(MAX_IDENTIFIER_LENGTH),
    `${"a".repeat(37)}.${"b".repeat(38)}`,
  ];
  it.each(valid)("accepts %j", (id) => {
    expect(() => validateIdentifier(id)).not.toThrow();
    expect(isValidIdentifier(id)).toBe(true);
  });

  const invalid = [
    ".",
    "-",
    "_",
    ".a",
    "a.",
    "-a",
    "a-",
    "_a",
    "a_",
    "a..b",
    "a.-b",
    "a--b",
    "a b",
    " a",
    "a ",
    "a/b",
    "a:b",
    "a@b",
    "日本",
    "a\nb",
    "a\u0000",
    "ÄÖ",
  ];
  it.each(invalid)("rejects %j with the pattern message", (id) => {
    const err = thrown(() => validateIdentifier(id));
    expect(isInvalidArgument(err)).toBe(true);
    expect(err.message).toMatch(/^identifier ".*" must match \^\[A-Za-z0-9\]\+/);
    expect(err.message.endsWith(`must match ${IDENTIFIER_PATTERN}: invalid argument`)).toBe(true);
    expect(isValidIdentifier(id)).toBe(false);
  });

  it("rejects the empty string", () => {
    const err = thrown(() => validateIdentifier(""));
    expect(isInvalidArgument(err)).toBe(true);
    expect(err.message).toBe("identifier must not be empty: invalid argument");
    expect(isValidIdentifier("")).toBe(false);
  });

  it("rejects more than 76 characters before checking the pattern", () => {
    const long = "a".repeat(MAX_IDENTIFIER_LENGTH + 1);
    const err = thrown(() => validateIdentifier(long));
    expect(isInvalidArgument(err)).toBe(true);
    expect(err.message).toBe(`identifier "${long}" greater than maximum length (76 characters): invalid argument`);
    const longAndBad = "-".repeat(100);
    expect(thrown(() => validateIdentifier(longAndBad)).message).toContain("greater than maximum length");
  });

  it("counts the length in bytes, like containerd", () => {
    const multibyte = "é".repeat(39); // 78 bytes
    expect(thrown(() => validateIdentifier(multibyte)).message).toContain("greater than maximum length");
  });

  it("quotes the identifier like Go's %q", () => {
    expect(thrown(() => validateIdentifier('a"b')).message).toBe(
      `identifier "a\\"b" must match ${IDENTIFIER_PATTERN}: invalid argument`,
    );
    expect(thrown(() => validateIdentifier("a\tb")).message).toContain('identifier "a\\tb" must match');
    expect(thrown(() => validateIdentifier("a\u0001")).message).toContain('identifier "a\\x01" must match');
    expect(thrown(() => validateIdentifier("日本")).message).toContain('identifier "日本" must match');
  });
});

describe("validateLabel", () => {
  it("accepts key and value up to 4096 bytes together", () => {
    expect(() => validateLabel("k", "v".repeat(MAX_LABEL_SIZE - 1))).not.toThrow();
    expect(() => validateLabel("k".repeat(MAX_LABEL_SIZE), "")).not.toThrow();
    expect(() => validateLabel("", "")).not.toThrow();
    expect(() => validateLabel("containerd.io/gc.ref.content.l.0", "sha256:abc")).not.toThrow();
  });

  it("rejects 4097 bytes with containerd's message", () => {
    const err = thrown(() => validateLabel("key", "v".repeat(MAX_LABEL_SIZE - 2)));
    expect(isInvalidArgument(err)).toBe(true);
    expect(err.message).toBe(
      "label key and value length (4097 bytes) greater than maximum size (4096 bytes), key: key: invalid argument",
    );
  });

  it("counts UTF-8 bytes, not UTF-16 units", () => {
    // 2049 two-byte characters are 4098 bytes though only 2049 code units.
    expect(() => validateLabel("k", "é".repeat(2048))).toThrow(/\(4097 bytes\)/);
    expect(() => validateLabel("", "é".repeat(2048))).not.toThrow();
  });

  it("shows at most the first 64 bytes of the key", () => {
    const key = `${"k".repeat(64)}TAIL`;
    const err = thrown(() => validateLabel(key, "v".repeat(MAX_LABEL_SIZE)));
    expect(err.message).toContain(`key: ${"k".repeat(64)}: invalid argument`);
    expect(err.message).not.toContain("TAIL");
    expect(err.message).toContain(`(${MAX_LABEL_SIZE + 68} bytes)`);
  });
});

describe("validateLabels", () => {
  it("accepts undefined, empty and small sets (records and maps)", () => {
    expect(() => validateLabels(undefined)).not.toThrow();
    expect(() => validateLabels({})).not.toThrow();
    expect(() => validateLabels({ a: "b", "c.d/e": "f" })).not.toThrow();
    expect(() => validateLabels(new Map([["a", "b"]]))).not.toThrow();
  });

  it("rejects a set with one oversized label", () => {
    expect(isInvalidArgument(thrown(() => validateLabels({ ok: "x", big: "v".repeat(5000) })))).toBe(true);
    expect(isInvalidArgument(thrown(() => validateLabels(new Map([["big", "v".repeat(5000)]]))))).toBe(true);
  });
});

describe("namespace headers", () => {
  it("has containerd's header names", () => {
    expect(NAMESPACE_HEADER).toBe("containerd-namespace");
    expect(TTRPC_NAMESPACE_HEADER).toBe("containerd-namespace-ttrpc");
    expect(LEASE_HEADER).toBe("containerd-lease");
    expect(DEFAULT_NAMESPACE).toBe("default");
  });

  const cases: Array<[string, Record<string, string>, string | undefined]> = [
    ["grpc header", { "containerd-namespace": "k8s.io" }, "k8s.io"],
    ["ttrpc header", { "containerd-namespace-ttrpc": "moby" }, "moby"],
    ["grpc wins over ttrpc", { "containerd-namespace": "a", "containerd-namespace-ttrpc": "b" }, "a"],
    ["empty grpc falls back to ttrpc", { "containerd-namespace": "", "containerd-namespace-ttrpc": "b" }, "b"],
    ["no header", {}, undefined],
    ["empty header", { "containerd-namespace": "" }, undefined],
    ["other headers only", { "containerd-lease": "l1" }, undefined],
    ["invalid value is returned as is", { "containerd-namespace": "a b" }, "a b"],
  ];
  it.each(cases)("namespaceFromHeaders: %s", (_name, headers, expected) => {
    expect(namespaceFromHeaders((key) => headers[key])).toBe(expected);
    expect(namespaceFromHeaders(new Headers(headers))).toBe(expected);
    expect(namespaceFromHeaders(new Map(Object.entries(headers)))).toBe(expected);
  });

  it("leaseFromHeaders", () => {
    expect(leaseFromHeaders(new Headers({ "containerd-lease": "l1" }))).toBe("l1");
    expect(leaseFromHeaders(new Headers({ "containerd-lease": "" }))).toBeUndefined();
    expect(leaseFromHeaders(() => null)).toBeUndefined();
  });

  it("Fetch Headers are case-insensitive", () => {
    expect(namespaceFromHeaders(new Headers({ "Containerd-Namespace": "x" }))).toBe("x");
  });
});

describe("requireNamespace", () => {
  it("returns a valid namespace from headers or a value", () => {
    expect(requireNamespace(new Headers({ "containerd-namespace": "default" }))).toBe("default");
    expect(requireNamespace((k) => (k === TTRPC_NAMESPACE_HEADER ? "moby" : null))).toBe("moby");
    expect(requireNamespace("k8s.io")).toBe("k8s.io");
  });

  it.each([
    [undefined],
    [null],
    [""],
    [new Headers()],
    [() => undefined],
  ])("missing namespace (%o) is a failed precondition", (source) => {
    const err = thrown(() => requireNamespace(source as never));
    expect(isFailedPrecondition(err)).toBe(true);
    expect(err.message).toBe("namespace is required: failed precondition");
  });

  it("invalid namespace is an invalid argument prefixed with namespace validation", () => {
    const err = thrown(() => requireNamespace(new Headers({ "containerd-namespace": "-bad" })));
    expect(isInvalidArgument(err)).toBe(true);
    expect(err.message).toBe(
      `namespace validation: identifier "-bad" must match ${IDENTIFIER_PATTERN}: invalid argument`,
    );
    const long = "n".repeat(77);
    expect(thrown(() => requireNamespace(long)).message).toBe(
      `namespace validation: identifier "${long}" greater than maximum length (76 characters): invalid argument`,
    );
  });

  it("validateNamespace", () => {
    expect(() => validateNamespace("default")).not.toThrow();
    const err = thrown(() => validateNamespace(""));
    expect(isInvalidArgument(err)).toBe(true);
    expect(err.message).toBe("namespace validation: identifier must not be empty: invalid argument");
  });
});

describe("validateTopic", () => {
  it.each([
    "/tasks/exit",
    "/images/create",
    "/containers/delete",
    "/a",
    "/snapshot/commit",
    "/x.y/z-1_2",
  ])("accepts %j", (topic) => expect(() => validateTopic(topic)).not.toThrow());

  const invalid: Array<[string, string]> = [
    ["", 'envelope topic "": must not be empty: invalid argument'],
    ["tasks/exit", `envelope topic "tasks/exit": must start with '/': invalid argument`],
    ["/", `envelope topic "/": must have at least one component: invalid argument`],
    [
      "/tasks/",
      'envelope topic "/tasks/": failed validation on component "": identifier must not be empty: invalid argument',
    ],
    [
      "//tasks",
      'envelope topic "//tasks": failed validation on component "": identifier must not be empty: invalid argument',
    ],
    [
      "/tasks/ex it",
      `envelope topic "/tasks/ex it": failed validation on component "ex it": identifier "ex it" must match ${IDENTIFIER_PATTERN}: invalid argument`,
    ],
    [
      `/${"t".repeat(77)}`,
      `envelope topic "/${"t".repeat(77)}": failed validation on component "${"t".repeat(77)}": identifier "${"t".repeat(77)}" greater than maximum length (76 characters): invalid argument`,
    ],
  ];
  it.each(invalid)("rejects %j", (topic, message) => {
    const err = thrown(() => validateTopic(topic));
    expect(isInvalidArgument(err)).toBe(true);
    expect(err.message).toBe(message);
  });
});

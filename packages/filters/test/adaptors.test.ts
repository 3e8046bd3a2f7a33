import { describe, expect, it } from "vitest";
import {
  type Adaptor,
  adaptContainer,
  adaptContent,
  adaptEnvelope,
  adaptEventFields,
  adaptImage,
  adaptLabels,
  adaptLease,
  adaptObject,
  adaptPlugin,
  adaptSnapshot,
  adaptStatus,
  adaptorFunc,
  allOf,
  always,
  anyOf,
  createSelector,
  filterFunc,
  parse,
  parseAll,
} from "../src/index.js";

type Row = [path: string, expected: string | undefined];
const check = (adaptor: Adaptor, rows: Row[]) => {
  for (const [path, expected] of rows) expect([path, adaptor.field(path.split("."))]).toEqual([path, expected]);
};

describe("adaptLabels", () => {
  const labels = { foo: "bar", "a.b": "dotted", "containerd.io/gc.root": "x", empty: "" };
  it("joins the path with dots", () => {
    const a = adaptLabels(labels);
    expect(a.field(["foo"])).toBe("bar");
    expect(a.field(["a", "b"])).toBe("dotted");
    expect(a.field(["a.b"])).toBe("dotted");
    expect(a.field(["containerd", "io/gc", "root"])).toBe("x");
    expect(a.field(["empty"])).toBe("");
    expect(a.field(["missing"])).toBeUndefined();
    expect(a.field([])).toBeUndefined();
  });

  it("ignores inherited properties", () => {
    const a = adaptLabels({});
    for (const key of ["constructor", "toString", "__proto__", "hasOwnProperty"]) {
      expect(a.field([key])).toBeUndefined();
    }
    expect(parse("labels.constructor").match(adaptObject({ labels: adaptLabels({}) }))).toBe(false);
  });

  it("accepts maps and undefined", () => {
    expect(adaptLabels(new Map([["a.b", "c"]])).field(["a", "b"])).toBe("c");
    expect(adaptLabels(undefined).field(["a"])).toBeUndefined();
  });

  it("presence of an empty label is true, as in containerd", () => {
    const a = adaptObject({ labels: adaptLabels({ empty: "" }) });
    expect(parse("labels.empty").match(a)).toBe(true);
    expect(parse('labels.empty==""').match(a)).toBe(true);
  });
});

describe("adaptObject", () => {
  const a = adaptObject({
    s: "str",
    e: "",
    n: 42,
    b: false,
    big: 10n,
    nul: null,
    u: undefined,
    nested: { deep: { leaf: "x" } },
    labels: adaptLabels({ "k.1": "v" }),
    custom: adaptorFunc((path) => (path.length === 0 ? "self" : path.join("/"))),
  });
  it("walks nested maps and delegates to adaptors", () => {
    check(a, [
      ["s", "str"],
      ["e", ""],
      ["n", "42"],
      ["b", "false"],
      ["big", "10"],
      ["nul", undefined],
      ["u", undefined],
      ["missing", undefined],
      ["nested", undefined],
      ["nested.deep", undefined],
      ["nested.deep.leaf", "x"],
      ["nested.deep.leaf.more", undefined],
      ["s.more", undefined],
      ["labels.k.1", "v"],
      ["labels.k", undefined],
      ["custom", "self"],
      ["custom.a.b", "a/b"],
      ["toString", undefined],
      ["__proto__", undefined],
    ]);
    expect(a.field([])).toBeUndefined();
  });
});

describe("adaptImage", () => {
  const image = adaptImage({
    name: "docker.io/library/busybox:latest",
    target: {
      digest: "sha256:aaaa",
      mediaType: "application/vnd.oci.image.index.v1+json",
      annotations: { "org.opencontainers.image.ref.name": "latest" },
    },
    labels: { "containerd.io/distribution.source.docker.io": "library/busybox" },
  });
  it("exposes containerd's image fields", () => {
    check(image, [
      ["name", "docker.io/library/busybox:latest"],
      ["target.digest", "sha256:aaaa"],
      ["target.mediatype", "application/vnd.oci.image.index.v1+json"],
      ["target.mediaType", undefined],
      ["target", undefined],
      ["target.size", undefined],
      ["labels.containerd.io/distribution.source.docker.io", "library/busybox"],
      ["annotations.org.opencontainers.image.ref.name", "latest"],
      ["created", undefined],
    ]);
  });
  it("works with ctr's filters", () => {
    expect(parse("name==docker.io/library/busybox:latest").match(image)).toBe(true);
    expect(parse('labels."containerd.io/distribution.source.docker.io"').match(image)).toBe(true);
    expect(parse("target.mediatype~=index").match(image)).toBe(true);
    expect(parse('annotations."org.opencontainers.image.ref.name"==latest').match(image)).toBe(true);
  });
  it("empty fields are absent; top-level annotations are a fallback", () => {
    const bare = adaptImage({ name: "", target: { digest: "" }, annotations: { a: "1" } });
    check(bare, [
      ["name", undefined],
      ["target.digest", undefined],
      ["target.mediatype", undefined],
      ["annotations.a", "1"],
      ["labels.a", undefined],
    ]);
  });
});

describe("adaptContainer", () => {
  it("exposes id, image, runtime.name, labels", () => {
    const c = adaptContainer({
      id: "c1",
      image: "docker.io/library/redis:7",
      runtime: { name: "io.containerd.runc.v2" },
      labels: { "io.cri-containerd.kind": "container" },
    });
    check(c, [
      ["id", "c1"],
      ["image", "docker.io/library/redis:7"],
      ["runtime.name", "io.containerd.runc.v2"],
      ["runtime", undefined],
      ["runtime.options", undefined],
      ["labels.io.cri-containerd.kind", "container"],
      ["snapshotter", undefined],
    ]);
    check(adaptContainer({ id: "c2" }), [
      ["image", undefined],
      ["runtime.name", undefined],
    ]);
    expect(parse("runtime.name==io.containerd.runc.v2,id~=^c").match(c)).toBe(true);
  });
});

describe("adaptContent", () => {
  it("exposes digest and labels; size is never present (as in containerd)", () => {
    const c = adaptContent({ digest: "sha256:bbbb", size: 1234, labels: { "containerd.io/gc.ref.content.l.0": "x" } });
    check(c, [
      ["digest", "sha256:bbbb"],
      ["size", undefined],
      ["labels.containerd.io/gc.ref.content.l.0", "x"],
    ]);
    expect(parse("size==1234").match(c)).toBe(false);
    expect(parse("digest~=^sha256:").match(c)).toBe(true);
  });
});

describe("adaptSnapshot", () => {
  it("exposes name, parent, kind, labels", () => {
    const s = adaptSnapshot({ name: "sha256:cccc", parent: "sha256:dddd", kind: "committed", labels: { l: "1" } });
    check(s, [
      ["name", "sha256:cccc"],
      ["parent", "sha256:dddd"],
      ["kind", "committed"],
      ["labels.l", "1"],
      ["usage", undefined],
    ]);
  });
  it("parent is present (empty) for a base snapshot; kinds are lower-cased", () => {
    const s = adaptSnapshot({ name: "k", kind: "Active" });
    check(s, [
      ["parent", ""],
      ["kind", "active"],
    ]);
    expect(parse("parent").match(s)).toBe(true);
    expect(parse('parent==""').match(s)).toBe(true);
    expect(adaptSnapshot({ name: "k", kind: "View" }).field(["kind"])).toBe("view");
    expect(adaptSnapshot({ name: "k", kind: "unknown" }).field(["kind"])).toBeUndefined();
    expect(adaptSnapshot({ name: "", kind: "active" }).field(["name"])).toBe("");
  });
});

describe("adaptLease, adaptStatus, adaptPlugin", () => {
  it("leases: id, labels", () => {
    const l = adaptLease({ id: "lease-1", labels: { "containerd.io/gc.expire": "2024-01-01T00:00:00Z" } });
    check(l, [
      ["id", "lease-1"],
      ["labels.containerd.io/gc.expire", "2024-01-01T00:00:00Z"],
    ]);
    expect(adaptLease({ id: "" }).field(["id"])).toBeUndefined();
  });
  it("statuses: ref is always present", () => {
    check(adaptStatus({ ref: "pull-1" }), [
      ["ref", "pull-1"],
      ["total", undefined],
    ]);
    expect(adaptStatus({ ref: "" }).field(["ref"])).toBe("");
    expect(parseAll([""]).match(adaptStatus({ ref: "x" }))).toBe(true);
  });
  it("plugins: type and id; capabilities and platforms are never present (as in containerd)", () => {
    const p = adaptPlugin({
      type: "io.containerd.snapshotter.v1",
      id: "overlayfs",
      capabilities: ["remap-ids"],
      platforms: [{ os: "linux", architecture: "amd64" }],
    });
    check(p, [
      ["type", "io.containerd.snapshotter.v1"],
      ["id", "overlayfs"],
      ["capabilities", undefined],
      ["platforms", undefined],
    ]);
    expect(parse("type==io.containerd.snapshotter.v1,id==overlayfs").match(p)).toBe(true);
    expect(parse("capabilities").match(p)).toBe(false);
  });
});

describe("adaptEnvelope", () => {
  const envelope = adaptEnvelope({
    topic: "/tasks/exit",
    namespace: "default",
    event: {
      container_id: "c1",
      id: "c1",
      pid: 42,
      exited_at: new Date(0),
      empty: "",
      runtime: { name: "io.containerd.runc.v2" },
      labels: { "a.b": "x", plain: "y", blank: "" },
    },
  });
  it("exposes topic, namespace and the event's string fields", () => {
    check(envelope, [
      ["topic", "/tasks/exit"],
      ["namespace", "default"],
      ["event.container_id", "c1"],
      ["event.id", "c1"],
      ["event.pid", undefined],
      ["event.exited_at", undefined],
      ["event.empty", undefined],
      ["event.runtime.name", "io.containerd.runc.v2"],
      ["event.runtime", undefined],
      ["event.labels.a.b", "x"],
      ["event.labels.plain", "y"],
      ["event.labels.blank", undefined],
      ["event.labels.missing", undefined],
      ["event", undefined],
      ["timestamp", undefined],
    ]);
  });
  it("matches ctr's event filters", () => {
    expect(parse('topic=="/tasks/exit"').match(envelope)).toBe(true);
    expect(parse("topic~=|^/tasks/|,namespace==default").match(envelope)).toBe(true);
    expect(parseAll(['topic=="/x/y"', "event.container_id==c1"]).match(envelope)).toBe(true);
    // As in containerd, an unquoted `/` starts a quoted literal, so topics must be quoted after `==`.
    expect(() => parse("topic==/tasks/exit")).toThrow("invalid quote encountered");
    expect(parse('event.labels."a.b"==x').match(envelope)).toBe(true);
  });
  it("accepts an adaptor for the event, and no event", () => {
    const withAdaptor = adaptEnvelope({
      topic: "/images/create",
      namespace: "",
      event: adaptObject({ name: "img" }),
    });
    check(withAdaptor, [
      ["event.name", "img"],
      ["namespace", undefined],
    ]);
    expect(adaptEnvelope({ topic: "/a", namespace: "n" }).field(["event", "x"])).toBeUndefined();
  });
  it("adaptEventFields alone", () => {
    const a = adaptEventFields({ key: "k", digest: "sha256:1" });
    check(a, [
      ["key", "k"],
      ["digest", "sha256:1"],
      ["constructor", undefined],
    ]);
    expect(a.field([])).toBeUndefined();
  });
});

describe("filter combinators", () => {
  const a = adaptObject({ x: "1" });
  it("always, anyOf, allOf, filterFunc, createSelector", () => {
    expect(always.match(a)).toBe(true);
    expect(anyOf([]).match(a)).toBe(false);
    expect(allOf([]).match(a)).toBe(true);
    const yes = filterFunc(() => true);
    const no = filterFunc(() => false);
    expect(anyOf([no, yes]).match(a)).toBe(true);
    expect(allOf([yes, no]).match(a)).toBe(false);
    expect(createSelector(["x"], "==", "1").match(a)).toBe(true);
    expect(createSelector(["x"], "?").match(a)).toBe(true);
    expect(createSelector(["y"], "!=", "1").match(a)).toBe(true);
    expect(createSelector(["x"], "~=", "", /^1$/).match(a)).toBe(true);
    expect(() => createSelector(["x"], "~=", "1")).toThrow(TypeError);
  });
});

import { isInvalidArgument } from "@berth/errdefs";
import { describe, expect, it } from "vitest";
import {
  MediaTypeDockerSchema1SignedManifest,
  MediaTypeDockerSchema2ManifestList,
  MediaTypeEmptyJSON,
  MediaTypeImageConfig,
  MediaTypeImageIndex,
  MediaTypeImageLayerGzip,
  MediaTypeImageManifest,
  ValidationError,
  assertValidImageConfig,
  assertValidManifest,
  digestOf,
  emptyJSONDescriptor,
  validateDescriptor,
  validateImageConfig,
  validateImageLayout,
  validateIndex,
  validateManifest,
  type ImageConfig,
  type Index,
  type Manifest,
  type Problem,
} from "../src/index.js";

const D1 = digestOf("config");
const D2 = digestOf("layer");
const paths = (problems: readonly Problem[]) => problems.map((p) => p.path);

const manifest = (): Manifest => ({
  schemaVersion: 2,
  mediaType: MediaTypeImageManifest,
  config: { mediaType: MediaTypeImageConfig, digest: D1, size: 6 },
  layers: [
    { mediaType: MediaTypeImageLayerGzip, digest: D2, size: 5 },
    { mediaType: MediaTypeImageLayerGzip, digest: D2, size: 5, urls: ["https://example.com/l"] },
  ],
  annotations: { "org.opencontainers.image.ref.name": "latest" },
});

describe("validateDescriptor", () => {
  it("accepts a valid descriptor and the empty JSON descriptor", () => {
    expect(validateDescriptor(manifest().config)).toEqual({ ok: true, problems: [] });
    expect(validateDescriptor(emptyJSONDescriptor()).ok).toBe(true);
    expect(
      validateDescriptor({ ...manifest().config, platform: { architecture: "arm64", os: "linux", variant: "v8" } }).ok,
    ).toBe(true);
  });

  it("reports every problem with its path", () => {
    const { ok, problems } = validateDescriptor({
      mediaType: "not a media type",
      digest: "sha256:ABC",
      size: -1,
      urls: ["::nope"],
      annotations: { a: 1 },
      platform: { os: "linux", "os.features": "x" },
      artifactType: 7,
    });
    expect(ok).toBe(false);
    expect(paths(problems)).toEqual([
      "$.mediaType",
      "$.digest",
      "$.size",
      "$.urls[0]",
      "$.annotations.a",
      "$.platform.architecture",
      '$.platform["os.features"]',
      "$.artifactType",
    ]);
    expect(problems[1]?.message).toContain('invalid digest "sha256:ABC"');
    expect(problems[2]?.message).toContain("between 0");
    expect(problems[5]?.message).toBe("is required");
  });

  it("checks embedded data against size and digest", () => {
    const good = emptyJSONDescriptor();
    expect(validateDescriptor({ ...good, size: 3 }).problems).toEqual([
      { path: "$.data", message: "decodes to 2 bytes, but size is 3" },
    ]);
    const wrong = validateDescriptor({ ...good, data: "W10=" }); // "[]"
    expect(paths(wrong.problems)).toEqual(["$.data"]);
    expect(wrong.problems[0]?.message).toContain("does not match digest");
    expect(paths(validateDescriptor({ ...good, data: "not base64!" }).problems)).toEqual(["$.data"]);
  });

  it("rejects non-objects and non-integer sizes", () => {
    expect(validateDescriptor(null).problems).toEqual([{ path: "$", message: "must be an object, got null" }]);
    expect(validateDescriptor({ ...manifest().config, size: 1.5 }).problems[0]?.message).toBe(
      "must be an integer, got number",
    );
  });
});

describe("validateManifest", () => {
  it("accepts a valid manifest", () => {
    expect(validateManifest(manifest())).toEqual({ ok: true, problems: [] });
  });

  it("reports multiple problems across nested descriptors", () => {
    const m = manifest() as unknown as Record<string, unknown>;
    m.schemaVersion = 1;
    m.config = { mediaType: MediaTypeImageConfig, size: "6" };
    (m.layers as Array<Record<string, unknown>>)[1]!.digest = "sha256:xyz";
    m.subject = { mediaType: MediaTypeImageManifest, digest: "md5:00", size: 1 };
    const { ok, problems } = validateManifest(m);
    expect(ok).toBe(false);
    expect(paths(problems)).toEqual([
      "$.schemaVersion",
      "$.config.digest",
      "$.config.size",
      "$.layers[1].digest",
      "$.subject.digest",
    ]);
    expect(problems[0]?.message).toBe("must be between 2 and 2, got 1");
    expect(problems[3]?.message).toContain('invalid digest "sha256:xyz"');
  });

  it("requires config and layers", () => {
    expect(validateManifest({ schemaVersion: 2 }).problems).toEqual([
      { path: "$.config", message: "is required" },
      { path: "$.layers", message: "is required" },
    ]);
  });

  it("requires artifactType when the config is the empty JSON descriptor", () => {
    const m = { ...manifest(), config: emptyJSONDescriptor() };
    expect(validateManifest(m).problems).toEqual([
      { path: "$.artifactType", message: `is required when config.mediaType is ${MediaTypeEmptyJSON}` },
    ]);
    expect(validateManifest({ ...m, artifactType: "application/vnd.example+json" }).ok).toBe(true);
  });

  it("rejects schema 1 and index media types", () => {
    const s1 = validateManifest({ ...manifest(), mediaType: MediaTypeDockerSchema1SignedManifest });
    expect(s1.problems[0]).toMatchObject({ path: "$.mediaType" });
    expect(s1.problems[0]?.message).toContain("schema 1");
    expect(paths(validateManifest({ ...manifest(), mediaType: MediaTypeImageIndex }).problems)).toEqual([
      "$.mediaType",
    ]);
  });

  it("assertValidManifest throws an InvalidArgument ValidationError listing every problem", () => {
    let caught: unknown;
    try {
      assertValidManifest({ schemaVersion: 3, config: {}, layers: "x" });
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ValidationError);
    expect(isInvalidArgument(caught)).toBe(true);
    const err = caught as ValidationError;
    expect(paths(err.problems)).toEqual([
      "$.schemaVersion",
      "$.config.mediaType",
      "$.config.digest",
      "$.config.size",
      "$.layers",
    ]);
    expect(err.message).toMatch(
      /^invalid manifest \(5 problems: \$\.schemaVersion: .*; \$\.layers: must be an array, got string\): invalid argument$/,
    );
    const ok: unknown = manifest();
    assertValidManifest(ok);
    expect(ok.layers).toHaveLength(2); // narrowed to Manifest
  });
});

describe("validateIndex", () => {
  const index = (): Index => ({
    schemaVersion: 2,
    mediaType: MediaTypeImageIndex,
    manifests: [
      { mediaType: MediaTypeImageManifest, digest: D1, size: 10, platform: { architecture: "amd64", os: "linux" } },
      { mediaType: MediaTypeImageManifest, digest: D2, size: 11 },
    ],
  });

  it("accepts a valid index", () => {
    expect(validateIndex(index()).ok).toBe(true);
  });

  it("reports problems in every entry", () => {
    const ix = index() as unknown as { manifests: Array<Record<string, unknown>> };
    ix.manifests[0]!.platform = { architecture: "", os: 3 };
    ix.manifests[1]!.size = -5;
    ix.manifests.push({ mediaType: MediaTypeImageManifest, digest: D1 });
    expect(paths(validateIndex(ix).problems)).toEqual([
      "$.manifests[0].platform.architecture",
      "$.manifests[0].platform.os",
      "$.manifests[1].size",
      "$.manifests[2].size",
    ]);
  });

  it("requires platforms in a docker manifest list", () => {
    const list = { ...index(), mediaType: MediaTypeDockerSchema2ManifestList };
    expect(validateIndex(list).problems).toEqual([
      { path: "$.manifests[1].platform", message: "is required in a docker manifest list" },
    ]);
  });
});

describe("validateImageConfig", () => {
  const config = (): ImageConfig => ({
    created: "2024-05-01T12:00:00.123456789Z",
    architecture: "amd64",
    os: "linux",
    config: {
      Env: ["PATH=/usr/bin"],
      Cmd: ["sh"],
      ExposedPorts: { "80/tcp": {}, "53/udp": {}, "8080": {} },
      Labels: { a: "b" },
    },
    rootfs: { type: "layers", diff_ids: [D1, D2] },
    history: [{ created_by: "RUN x", empty_layer: true }],
  });

  it("accepts a valid config, including Docker's null fields", () => {
    expect(validateImageConfig(config()).ok).toBe(true);
    const docker = { ...config(), config: { ...config().config, Entrypoint: null, Volumes: null, OnBuild: null } };
    expect(validateImageConfig(docker).ok).toBe(true);
  });

  it("reports every problem", () => {
    const c = config() as unknown as Record<string, unknown>;
    c.created = "yesterday";
    delete c.os;
    c.config = { Cmd: "sh", ExposedPorts: { "80/tcpx": {} }, Labels: { a: 1 } };
    c.rootfs = { type: "layer", diff_ids: [D1, "sha256:nope"] };
    c.history = [{ empty_layer: "yes" }];
    expect(paths(validateImageConfig(c).problems)).toEqual([
      "$.created",
      "$.os",
      '$.config.ExposedPorts["80/tcpx"]',
      "$.config.Cmd",
      "$.config.Labels.a",
      "$.rootfs.type",
      "$.rootfs.diff_ids[1]",
      "$.history[0].empty_layer",
    ]);
  });

  it("assertValidImageConfig narrows", () => {
    expect(() => assertValidImageConfig({})).toThrow(/invalid image config \(3 problems/);
  });
});

describe("validateImageLayout", () => {
  it("checks imageLayoutVersion", () => {
    expect(validateImageLayout({ imageLayoutVersion: "1.0.0" }).ok).toBe(true);
    expect(paths(validateImageLayout({ imageLayoutVersion: 1 }).problems)).toEqual(["$.imageLayoutVersion"]);
  });
});

import { describe, expect, it } from "vitest";
import {
  MediaTypeDockerSchema1Manifest,
  MediaTypeDockerSchema1SignedManifest,
  MediaTypeDockerSchema2Config,
  MediaTypeDockerSchema2Layer,
  MediaTypeDockerSchema2LayerForeignGzip,
  MediaTypeDockerSchema2LayerGzip,
  MediaTypeDockerSchema2LayerZstd,
  MediaTypeDockerSchema2Manifest,
  MediaTypeDockerSchema2ManifestList,
  MediaTypeDockerSchema2PluginConfig,
  MediaTypeEmptyJSON,
  MediaTypeImageConfig,
  MediaTypeImageIndex,
  MediaTypeImageLayer,
  MediaTypeImageLayerGzip,
  MediaTypeImageLayerNonDistributableGzip,
  MediaTypeImageLayerNonDistributableZstd,
  MediaTypeImageLayerZstd,
  MediaTypeImageManifest,
  isConfigType,
  isDockerSchema1Type,
  isIndexType,
  isLayerType,
  isManifestType,
  isNonDistributableLayerType,
  isValidMediaType,
  layerCompression,
} from "../src/index.js";

describe("media type predicates", () => {
  it("classifies indexes and manifests", () => {
    expect(isIndexType(MediaTypeImageIndex)).toBe(true);
    expect(isIndexType(MediaTypeDockerSchema2ManifestList)).toBe(true);
    expect(isIndexType(MediaTypeImageManifest)).toBe(false);
    expect(isManifestType(MediaTypeImageManifest)).toBe(true);
    expect(isManifestType(MediaTypeDockerSchema2Manifest)).toBe(true);
    expect(isManifestType(MediaTypeDockerSchema1Manifest)).toBe(false);
    expect(isManifestType(MediaTypeImageIndex)).toBe(false);
  });

  it("classifies configs", () => {
    expect(isConfigType(MediaTypeImageConfig)).toBe(true);
    expect(isConfigType(MediaTypeDockerSchema2Config)).toBe(true);
    expect(isConfigType(MediaTypeDockerSchema2PluginConfig)).toBe(true);
    expect(isConfigType(MediaTypeEmptyJSON)).toBe(false);
    expect(isConfigType(MediaTypeImageLayer)).toBe(false);
  });

  it("classifies layers and non-distributable layers", () => {
    for (const t of [
      MediaTypeImageLayer,
      MediaTypeImageLayerGzip,
      MediaTypeImageLayerZstd,
      MediaTypeDockerSchema2Layer,
    ]) {
      expect(isLayerType(t)).toBe(true);
      expect(isNonDistributableLayerType(t)).toBe(false);
    }
    expect(isLayerType(MediaTypeImageLayerNonDistributableGzip)).toBe(true);
    expect(isNonDistributableLayerType(MediaTypeImageLayerNonDistributableGzip)).toBe(true);
    expect(isNonDistributableLayerType(MediaTypeDockerSchema2LayerForeignGzip)).toBe(true);
    expect(isLayerType(MediaTypeImageConfig)).toBe(false);
    expect(isLayerType("application/octet-stream")).toBe(false);
  });

  it("recognises schema 1 to reject it", () => {
    expect(isDockerSchema1Type(MediaTypeDockerSchema1Manifest)).toBe(true);
    expect(isDockerSchema1Type(MediaTypeDockerSchema1SignedManifest)).toBe(true);
    expect(isDockerSchema1Type(MediaTypeDockerSchema2Manifest)).toBe(false);
  });

  it("ignores case and parameters", () => {
    expect(isManifestType(`${MediaTypeImageManifest}; charset=utf-8`)).toBe(true);
    expect(isIndexType(MediaTypeImageIndex.toUpperCase())).toBe(true);
  });
});

describe("layerCompression", () => {
  it.each([
    [MediaTypeImageLayer, "none"],
    [MediaTypeImageLayerGzip, "gzip"],
    [MediaTypeImageLayerZstd, "zstd"],
    [MediaTypeImageLayerNonDistributableGzip, "gzip"],
    [MediaTypeImageLayerNonDistributableZstd, "zstd"],
    [MediaTypeDockerSchema2Layer, "none"],
    [MediaTypeDockerSchema2LayerGzip, "gzip"],
    [MediaTypeDockerSchema2LayerZstd, "zstd"],
    [MediaTypeDockerSchema2LayerForeignGzip, "gzip"],
    [MediaTypeImageConfig, "unknown"],
    ["application/vnd.oci.image.layer.v1.tar+bzip2", "unknown"],
    ["", "unknown"],
  ])("%s → %s", (mediaType, expected) => {
    expect(layerCompression(mediaType)).toBe(expected);
  });
});

describe("isValidMediaType", () => {
  it.each([MediaTypeImageManifest, "text/plain", "application/vnd.a+b", "a/b"])("accepts %s", (t) => {
    expect(isValidMediaType(t)).toBe(true);
  });
  it.each([
    "",
    "text",
    "/plain",
    "text/",
    "text/plain; charset=utf-8",
    "-a/b",
    "a/b/c",
    `a/${"b".repeat(128)}`,
    "te xt/plain",
  ])("rejects %j", (t) => {
    expect(isValidMediaType(t)).toBe(false);
  });
});

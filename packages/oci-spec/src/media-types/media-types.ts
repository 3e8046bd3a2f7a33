// OCI image-spec 1.1 media types.
export const MediaTypeDescriptor = "application/vnd.oci.descriptor.v1+json";
export const MediaTypeLayoutHeader = "application/vnd.oci.layout.header.v1+json";
export const MediaTypeImageManifest = "application/vnd.oci.image.manifest.v1+json";
export const MediaTypeImageIndex = "application/vnd.oci.image.index.v1+json";
export const MediaTypeImageConfig = "application/vnd.oci.image.config.v1+json";
/** The empty JSON object `{}`, for configs and layers of artifacts that have none. */
export const MediaTypeEmptyJSON = "application/vnd.oci.empty.v1+json";
export const MediaTypeImageLayer = "application/vnd.oci.image.layer.v1.tar";
export const MediaTypeImageLayerGzip = "application/vnd.oci.image.layer.v1.tar+gzip";
export const MediaTypeImageLayerZstd = "application/vnd.oci.image.layer.v1.tar+zstd";
/** @deprecated by image-spec 1.1: non-distributable layers SHOULD NOT be created. */
export const MediaTypeImageLayerNonDistributable = "application/vnd.oci.image.layer.nondistributable.v1.tar";
/** @deprecated by image-spec 1.1: non-distributable layers SHOULD NOT be created. */
export const MediaTypeImageLayerNonDistributableGzip = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
/** @deprecated by image-spec 1.1: non-distributable layers SHOULD NOT be created. */
export const MediaTypeImageLayerNonDistributableZstd = "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd";

// Docker image manifest v2, schema 2.
export const MediaTypeDockerSchema2Manifest = "application/vnd.docker.distribution.manifest.v2+json";
export const MediaTypeDockerSchema2ManifestList = "application/vnd.docker.distribution.manifest.list.v2+json";
export const MediaTypeDockerSchema2Config = "application/vnd.docker.container.image.v1+json";
export const MediaTypeDockerSchema2Layer = "application/vnd.docker.image.rootfs.diff.tar";
export const MediaTypeDockerSchema2LayerGzip = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/** Not part of the Docker spec, but written by some tools (containerd accepts it). */
export const MediaTypeDockerSchema2LayerZstd = "application/vnd.docker.image.rootfs.diff.tar.zstd";
export const MediaTypeDockerSchema2LayerForeign = "application/vnd.docker.image.rootfs.foreign.diff.tar";
export const MediaTypeDockerSchema2LayerForeignGzip = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
export const MediaTypeDockerSchema2PluginConfig = "application/vnd.docker.plugin.v1+json";

// Docker schema 1: recognised only to be rejected.
export const MediaTypeDockerSchema1Manifest = "application/vnd.docker.distribution.manifest.v1+json";
export const MediaTypeDockerSchema1SignedManifest = "application/vnd.docker.distribution.manifest.v1+prettyjws";

export type LayerCompression = "gzip" | "zstd" | "none" | "unknown";

const LAYER_COMPRESSION: ReadonlyMap<string, LayerCompression> = new Map<string, LayerCompression>([
  [MediaTypeImageLayer, "none"],
  [MediaTypeImageLayerGzip, "gzip"],
  [MediaTypeImageLayerZstd, "zstd"],
  [MediaTypeImageLayerNonDistributable, "none"],
  [MediaTypeImageLayerNonDistributableGzip, "gzip"],
  [MediaTypeImageLayerNonDistributableZstd, "zstd"],
  [MediaTypeDockerSchema2Layer, "none"],
  [MediaTypeDockerSchema2LayerGzip, "gzip"],
  [MediaTypeDockerSchema2LayerZstd, "zstd"],
  [MediaTypeDockerSchema2LayerForeign, "none"],
  [MediaTypeDockerSchema2LayerForeignGzip, "gzip"],
]);

const INDEX_TYPES: ReadonlySet<string> = new Set([MediaTypeImageIndex, MediaTypeDockerSchema2ManifestList]);
const MANIFEST_TYPES: ReadonlySet<string> = new Set([MediaTypeImageManifest, MediaTypeDockerSchema2Manifest]);
const CONFIG_TYPES: ReadonlySet<string> = new Set([
  MediaTypeImageConfig,
  MediaTypeDockerSchema2Config,
  MediaTypeDockerSchema2PluginConfig,
]);
const SCHEMA1_TYPES: ReadonlySet<string> = new Set([
  MediaTypeDockerSchema1Manifest,
  MediaTypeDockerSchema1SignedManifest,
]);

/** Strips media type parameters (`; charset=utf-8`) and lower-cases, as media types compare case-insensitively. */
function base(mediaType: string): string {
  const i = mediaType.indexOf(";");
  return (i < 0 ? mediaType : mediaType.slice(0, i)).trim().toLowerCase();
}

/** An OCI image index or a Docker manifest list. */
export function isIndexType(mediaType: string): boolean {
  return INDEX_TYPES.has(base(mediaType));
}

/** An OCI image manifest or a Docker schema 2 manifest. */
export function isManifestType(mediaType: string): boolean {
  return MANIFEST_TYPES.has(base(mediaType));
}

/** An OCI image config, a Docker image config or a Docker plugin config. */
export function isConfigType(mediaType: string): boolean {
  return CONFIG_TYPES.has(base(mediaType));
}

/** An OCI or Docker layer, of any compression (including non-distributable and foreign layers). */
export function isLayerType(mediaType: string): boolean {
  return LAYER_COMPRESSION.has(base(mediaType));
}

/** An OCI non-distributable or Docker foreign layer: one that registries need not serve. */
export function isNonDistributableLayerType(mediaType: string): boolean {
  const t = base(mediaType);
  return (
    t.startsWith("application/vnd.oci.image.layer.nondistributable.") ||
    t.startsWith("application/vnd.docker.image.rootfs.foreign.")
  );
}

/** A Docker schema 1 manifest, which Berth rejects. */
export function isDockerSchema1Type(mediaType: string): boolean {
  return SCHEMA1_TYPES.has(base(mediaType));
}

/** The compression of a layer media type; "unknown" for anything that is not a known layer type. */
export function layerCompression(mediaType: string): LayerCompression {
  return LAYER_COMPRESSION.get(base(mediaType)) ?? "unknown";
}

/** RFC 6838 §4.2 `type-name "/" subtype-name`, each a restricted-name of 1 to 127 characters. */
const MEDIA_TYPE_RE = /^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}\/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$/;

/** True when `s` is a syntactically valid media type without parameters (RFC 6838 §4.2). */
export function isValidMediaType(s: unknown): s is string {
  return typeof s === "string" && MEDIA_TYPE_RE.test(s);
}

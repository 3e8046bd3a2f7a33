// OCI image-spec 1.1 types, with the specs' JSON field names.
import type { Digest } from "../digest/digest.js";

export type Annotations = Record<string, string>;

/** The platform an image or manifest runs on. */
export interface Platform {
  /** GOARCH values: `amd64`, `arm64`, `arm`, `ppc64le`, `s390x`, `riscv64`, … */
  architecture: string;
  /** GOOS values: `linux`, `windows`, … */
  os: string;
  "os.version"?: string;
  "os.features"?: string[];
  /** CPU variant: `v7` for arm, `v8` for arm64, … */
  variant?: string;
  /** Reserved by image-spec 1.1; used by Docker manifest lists. */
  features?: string[];
}

/** A content descriptor: what a blob is, how to find and verify it. */
export interface Descriptor {
  mediaType: string;
  digest: Digest;
  /** Size in bytes of the referenced content. */
  size: number;
  urls?: string[];
  annotations?: Annotations;
  /** The content itself, base64-encoded. */
  data?: string;
  platform?: Platform;
  artifactType?: string;
}

export interface Manifest {
  schemaVersion: 2;
  mediaType?: string;
  artifactType?: string;
  config: Descriptor;
  layers: Descriptor[];
  subject?: Descriptor;
  annotations?: Annotations;
}

export interface Index {
  schemaVersion: 2;
  mediaType?: string;
  artifactType?: string;
  manifests: Descriptor[];
  subject?: Descriptor;
  annotations?: Annotations;
}

/** The `config` object of an image config: execution defaults for a container. */
export interface ImageConfigConfig {
  User?: string;
  /** Keys are `port/tcp`, `port/udp` or `port` (tcp); values are `{}`. */
  ExposedPorts?: Record<string, Record<string, never>>;
  /** `NAME=value` entries. */
  Env?: string[];
  Entrypoint?: string[];
  Cmd?: string[];
  Volumes?: Record<string, Record<string, never>>;
  WorkingDir?: string;
  Labels?: Record<string, string>;
  StopSignal?: string;
  /** Windows only, deprecated. */
  ArgsEscaped?: boolean;
}

export interface RootFS {
  /** Always `layers`. */
  type: "layers";
  /** Digests of the uncompressed layers, bottom first. */
  diff_ids: Digest[];
}

export interface History {
  /** RFC 3339 date-time. */
  created?: string;
  created_by?: string;
  author?: string;
  comment?: string;
  /** True when this step created no layer. */
  empty_layer?: boolean;
}

/** The image configuration (`application/vnd.oci.image.config.v1+json`). */
export interface ImageConfig {
  /** RFC 3339 date-time. */
  created?: string;
  author?: string;
  architecture: string;
  os: string;
  "os.version"?: string;
  "os.features"?: string[];
  variant?: string;
  config?: ImageConfigConfig;
  rootfs: RootFS;
  history?: History[];
}

/** The `oci-layout` file at the root of an image layout. */
export interface ImageLayout {
  imageLayoutVersion: string;
}

/** A Docker image manifest v2, schema 2. */
export interface DockerManifest {
  schemaVersion: 2;
  mediaType: "application/vnd.docker.distribution.manifest.v2+json";
  config: Descriptor;
  layers: Descriptor[];
}

/** One entry of a Docker manifest list; `platform` is required there. */
export interface DockerManifestListEntry extends Descriptor {
  platform: Platform;
}

/** A Docker manifest list (the Docker counterpart of an OCI index). */
export interface DockerManifestList {
  schemaVersion: 2;
  mediaType: "application/vnd.docker.distribution.manifest.list.v2+json";
  manifests: DockerManifestListEntry[];
}

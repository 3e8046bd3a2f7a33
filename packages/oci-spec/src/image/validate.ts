import { createHash } from "node:crypto";
import { digestProblem, isSupportedAlgorithm } from "../digest/digest.js";
import {
  type Check,
  type ObjectRule,
  array,
  bool,
  emptyObjectMap,
  enumOf,
  int,
  matches,
  nonEmpty,
  nullable,
  object,
  opt,
  prop,
  req,
  run,
  str,
  stringArray,
  stringMap,
  type Refine,
} from "../internal/check.js";
import {
  MediaTypeDockerSchema2Manifest,
  MediaTypeDockerSchema2ManifestList,
  MediaTypeEmptyJSON,
  MediaTypeImageIndex,
  MediaTypeImageManifest,
  isDockerSchema1Type,
  isValidMediaType,
} from "../media-types/media-types.js";
import { ValidationError, type ValidationResult } from "../validation.js";
import type { Descriptor, ImageConfig, ImageLayout, Index, Manifest } from "./types.js";

const digestRefine: Refine<string> = (s) => {
  const problem = digestProblem(s);
  return problem === undefined ? undefined : `invalid digest ${JSON.stringify(s)}: ${problem}`;
};
const mediaTypeRefine: Refine<string> = (s) =>
  isValidMediaType(s) ? undefined : `invalid media type ${JSON.stringify(s)} (RFC 6838)`;
const urlRefine: Refine<string> = (s) => (URL.canParse(s) ? undefined : `invalid URL ${JSON.stringify(s)}`);
const BASE64_RE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
/** RFC 3339 date-time, as Go's time.RFC3339 parses it. */
const DATE_TIME_RE = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})$/;
const dateTimeRefine: Refine<string> = (s) =>
  DATE_TIME_RE.test(s) && !Number.isNaN(Date.parse(s))
    ? undefined
    : `must be an RFC 3339 date-time, got ${JSON.stringify(s)}`;

const digestCheck = str(digestRefine);
const mediaTypeCheck = str(mediaTypeRefine);
/** A size: a non-negative integer of at most 2^53-1 (the JSON schema says int64; larger sizes lose precision). */
const sizeCheck = int(0, Number.MAX_SAFE_INTEGER);

const platformShape = {
  architecture: req(str(nonEmpty)),
  os: req(str(nonEmpty)),
  "os.version": opt(str()),
  "os.features": opt(stringArray),
  variant: opt(str()),
  features: opt(stringArray),
};
const platformCheck = object(platformShape);

/** Embedded data must decode to exactly `size` bytes with the descriptor's digest. */
const embeddedDataRule: ObjectRule = (d, path, out) => {
  if (typeof d.data !== "string" || !BASE64_RE.test(d.data)) return;
  const bytes = Buffer.from(d.data, "base64");
  if (typeof d.size === "number" && bytes.byteLength !== d.size) {
    out.push({ path: prop(path, "data"), message: `decodes to ${bytes.byteLength} bytes, but size is ${d.size}` });
  }
  if (typeof d.digest === "string" && digestProblem(d.digest) === undefined) {
    const algorithm = d.digest.slice(0, d.digest.indexOf(":"));
    if (isSupportedAlgorithm(algorithm)) {
      const actual = `${algorithm}:${createHash(algorithm).update(bytes).digest("hex")}`;
      if (actual !== d.digest) out.push({ path: prop(path, "data"), message: `does not match digest (got ${actual})` });
    }
  }
};

const descriptorShape = {
  mediaType: req(mediaTypeCheck),
  digest: req(digestCheck),
  size: req(sizeCheck),
  urls: opt(array(str(urlRefine))),
  annotations: opt(stringMap),
  data: opt(str(matches(BASE64_RE, "base64"))),
  platform: opt(platformCheck),
  artifactType: opt(mediaTypeCheck),
};
const descriptorCheck: Check = object(descriptorShape, embeddedDataRule);

const schemaVersionCheck = int(2, 2);

const rejectSchema1: Refine<string> = (s) =>
  isDockerSchema1Type(s) ? `docker schema 1 manifests are not supported (${s})` : undefined;

const mediaTypeOf =
  (allowed: readonly string[]): Refine<string> =>
  (s) =>
    allowed.includes(s)
      ? undefined
      : `must be ${allowed.map((a) => JSON.stringify(a)).join(" or ")}, got ${JSON.stringify(s)}`;

/** image-spec: artifactType MUST be set when config.mediaType is the empty JSON type. */
const artifactTypeRule: ObjectRule = (m, path, out) => {
  const config = m.config as { mediaType?: unknown } | undefined;
  if (config?.mediaType === MediaTypeEmptyJSON && m.artifactType === undefined) {
    out.push({
      path: prop(path, "artifactType"),
      message: `is required when config.mediaType is ${MediaTypeEmptyJSON}`,
    });
  }
};

const manifestCheck: Check = object(
  {
    schemaVersion: req(schemaVersionCheck),
    mediaType: opt(str(rejectSchema1, mediaTypeOf([MediaTypeImageManifest, MediaTypeDockerSchema2Manifest]))),
    artifactType: opt(mediaTypeCheck),
    config: req(descriptorCheck),
    // image-spec: layers SHOULD (not MUST) have at least one entry, so an empty array is accepted.
    layers: req(array(descriptorCheck)),
    subject: opt(descriptorCheck),
    annotations: opt(stringMap),
  },
  artifactTypeRule,
);

/** Docker manifest lists require a platform on every entry. */
const manifestListPlatformRule: ObjectRule = (ix, path, out) => {
  if (ix.mediaType !== MediaTypeDockerSchema2ManifestList || !Array.isArray(ix.manifests)) return;
  ix.manifests.forEach((m: unknown, i) => {
    if (typeof m === "object" && m !== null && (m as { platform?: unknown }).platform === undefined) {
      out.push({ path: `${prop(path, "manifests")}[${i}].platform`, message: "is required in a docker manifest list" });
    }
  });
};

const indexCheck: Check = object(
  {
    schemaVersion: req(schemaVersionCheck),
    mediaType: opt(str(mediaTypeOf([MediaTypeImageIndex, MediaTypeDockerSchema2ManifestList]))),
    artifactType: opt(mediaTypeCheck),
    manifests: req(array(descriptorCheck)),
    subject: opt(descriptorCheck),
    annotations: opt(stringMap),
  },
  manifestListPlatformRule,
);

const PORT_RE = /^\d{1,5}(?:\/(?:tcp|udp|sctp))?$/;
const portRefine: Refine<string> = (s) => {
  if (!PORT_RE.test(s)) return `must be "port", "port/tcp", "port/udp" or "port/sctp", got ${JSON.stringify(s)}`;
  const port = Number.parseInt(s, 10);
  return port > 65535 ? `port ${port} out of range` : undefined;
};

// Docker writes null for unset fields of the config object ("Cmd": null), so they are nullable.
const imageConfigCheck: Check = object({
  created: opt(str(dateTimeRefine)),
  author: opt(str()),
  ...platformShape,
  config: nullable(
    object({
      User: nullable(str()),
      ExposedPorts: nullable(emptyObjectMap(portRefine)),
      Env: nullable(stringArray),
      Entrypoint: nullable(stringArray),
      Cmd: nullable(stringArray),
      Volumes: nullable(emptyObjectMap()),
      WorkingDir: nullable(str()),
      Labels: nullable(stringMap),
      StopSignal: nullable(str()),
      ArgsEscaped: nullable(bool),
    }),
  ),
  rootfs: req(
    object({
      type: req(enumOf(["layers"])),
      diff_ids: req(array(digestCheck)),
    }),
  ),
  history: nullable(
    array(
      object({
        created: opt(str(dateTimeRefine)),
        created_by: opt(str()),
        author: opt(str()),
        comment: opt(str()),
        empty_layer: opt(bool),
      }),
    ),
  ),
});

const imageLayoutCheck: Check = object({
  imageLayoutVersion: req(str(matches(/^\d+\.\d+\.\d+$/, "a version like 1.0.0"))),
});

export const validateDescriptor = (value: unknown): ValidationResult => run(descriptorCheck, value);
export const validatePlatform = (value: unknown): ValidationResult => run(platformCheck, value);
/** Validates an OCI image manifest or a Docker schema 2 manifest; schema 1 is reported as unsupported. */
export const validateManifest = (value: unknown): ValidationResult => run(manifestCheck, value);
/** Validates an OCI image index or a Docker manifest list. */
export const validateIndex = (value: unknown): ValidationResult => run(indexCheck, value);
/** Validates an OCI (or Docker) image config. Null fields written by Docker are accepted. */
export const validateImageConfig = (value: unknown): ValidationResult => run(imageConfigCheck, value);
export const validateImageLayout = (value: unknown): ValidationResult => run(imageLayoutCheck, value);

function assertWith<T>(subject: string, validate: (v: unknown) => ValidationResult) {
  return (value: unknown): asserts value is T => {
    const { ok, problems } = validate(value);
    if (!ok) throw new ValidationError(subject, problems);
  };
}

export const assertValidDescriptor: (value: unknown) => asserts value is Descriptor = assertWith(
  "descriptor",
  validateDescriptor,
);
export const assertValidManifest: (value: unknown) => asserts value is Manifest = assertWith(
  "manifest",
  validateManifest,
);
export const assertValidIndex: (value: unknown) => asserts value is Index = assertWith("index", validateIndex);
export const assertValidImageConfig: (value: unknown) => asserts value is ImageConfig = assertWith(
  "image config",
  validateImageConfig,
);
export const assertValidImageLayout: (value: unknown) => asserts value is ImageLayout = assertWith(
  "image layout",
  validateImageLayout,
);

/**
 * The image model over a content Provider (containerd's core/images): children of indexes and manifests,
 * a platform's manifest, config, diffIDs, platforms, size, usage and completeness.
 */
import type { Ctx, Info, Manager, Provider } from "@berth/content-store";
import {
  InvalidArgumentError,
  NotFoundError,
  NotImplementedError,
  ResourceExhaustedError,
  isNotFound,
} from "@berth/errdefs";
import {
  type Descriptor,
  type Digest,
  type ImageConfig,
  type Index,
  type Manifest,
  type Platform,
  digestProblem,
  isDockerSchema1Type,
  isIndexType,
  isManifestType,
  isValidMediaType,
} from "@berth/oci-spec";
import { type Handler, SkipDesc, filterPlatforms, handlers, limitManifests, walk } from "./handlers.js";
import { isImageConfigType } from "./labels.js";
import { type MatchComparer, normalize } from "./platforms/platforms.js";

/** An image record: a name pointing at a root descriptor (index, manifest list or manifest). */
export interface Image {
  readonly name: string;
  readonly labels?: Record<string, string>;
  readonly target: Descriptor;
  readonly createdAt?: Date;
  readonly updatedAt?: Date;
}

/** The most bytes read from a manifest, index or config blob (containerd's archive JSON limit). */
export const MaxManifestSize = 20 << 20;

/** Label containerd uses to carry a manifest's digest beside its content. */
export const ManifestDigestLabel = "io.containerd.manifest-digest";

/** Reads a whole blob (up to `max` bytes; ResourceExhausted beyond). NotFound when absent. */
export async function readBlob(
  ctx: Ctx,
  provider: Provider,
  desc: Pick<Descriptor, "digest"> & Partial<Descriptor>,
  max = MaxManifestSize,
): Promise<Uint8Array> {
  const ra = await provider.readerAt(ctx, { digest: desc.digest, size: desc.size, mediaType: desc.mediaType });
  try {
    if (ra.size > max) {
      throw new ResourceExhaustedError(`blob ${desc.digest}: ${ra.size} bytes exceeds the ${max} byte limit`);
    }
    const parts: Uint8Array[] = [];
    let n = 0;
    for await (const chunk of ra.stream(0)) {
      parts.push(chunk);
      n += chunk.byteLength;
    }
    return Buffer.concat(parts, n);
  } finally {
    await ra.close();
  }
}

function describe(desc: Pick<Descriptor, "digest" | "mediaType">): string {
  return `${desc.mediaType} ${desc.digest}`;
}

/** Parses JSON, InvalidArgument (naming the blob) when it is not JSON or not an object. */
export function parseJSONObject(bytes: Uint8Array | string, subject: string): Record<string, unknown> {
  let doc: unknown;
  try {
    doc = JSON.parse(typeof bytes === "string" ? bytes : Buffer.from(bytes).toString("utf8"));
  } catch (err) {
    throw new InvalidArgumentError(`${subject}: invalid JSON`, { cause: err });
  }
  if (doc === null || typeof doc !== "object" || Array.isArray(doc)) {
    throw new InvalidArgumentError(`${subject}: expected a JSON object`);
  }
  return doc as Record<string, unknown>;
}

/**
 * Checks a descriptor read from JSON: a valid media type, a valid digest and a non-negative integer size.
 * InvalidArgument naming `where` otherwise.
 */
export function checkDescriptor(value: unknown, where: string): Descriptor {
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new InvalidArgumentError(`${where}: descriptor must be an object`);
  }
  const d = value as Record<string, unknown>;
  if (!isValidMediaType(d.mediaType)) {
    throw new InvalidArgumentError(`${where}: invalid media type ${JSON.stringify(d.mediaType)}`);
  }
  const problem = digestProblem(d.digest);
  if (problem !== undefined)
    throw new InvalidArgumentError(`${where}: invalid digest ${JSON.stringify(d.digest)}: ${problem}`);
  if (typeof d.size !== "number" || !Number.isSafeInteger(d.size) || d.size < 0) {
    throw new InvalidArgumentError(`${where}: invalid size ${JSON.stringify(d.size)}`);
  }
  if (d.platform !== undefined && (d.platform === null || typeof d.platform !== "object")) {
    throw new InvalidArgumentError(`${where}: invalid platform`);
  }
  if (d.annotations !== undefined) {
    const a = d.annotations;
    if (a === null || typeof a !== "object" || Object.values(a).some((v) => typeof v !== "string")) {
      throw new InvalidArgumentError(`${where}: annotations must map strings to strings`);
    }
  }
  return d as unknown as Descriptor;
}

/**
 * containerd's validateMediaType: schema 1 (`fsLayers`) is NotImplemented; a manifest that looks like an index
 * (or the reverse) is InvalidArgument.
 */
export function validateDocument(doc: Record<string, unknown>, mediaType: string, subject: string): void {
  if (Array.isArray(doc.fsLayers) && doc.fsLayers.length > 0) {
    throw new NotImplementedError(`${subject}: media-type: schema 1 not supported`);
  }
  const docType = typeof doc.mediaType === "string" ? doc.mediaType : "";
  if (isManifestType(mediaType) && (doc.manifests !== undefined || isIndexType(docType))) {
    throw new InvalidArgumentError(`${subject}: media-type: expected manifest but found index (${mediaType})`);
  }
  if (isIndexType(mediaType) && (doc.config !== undefined || doc.layers !== undefined || isManifestType(docType))) {
    throw new InvalidArgumentError(`${subject}: media-type: expected index but found manifest (${mediaType})`);
  }
}

/** Rejects Docker schema 1 media types with containerd's wording. */
export function rejectSchema1(desc: Pick<Descriptor, "mediaType" | "digest">): void {
  if (isDockerSchema1Type(desc.mediaType)) {
    throw new NotImplementedError(`${describe(desc)}: media-type: schema 1 not supported`);
  }
}

/** Parses and checks manifest bytes (as stored under `desc`). */
export function decodeManifest(bytes: Uint8Array, desc: Pick<Descriptor, "mediaType" | "digest">): Manifest {
  const subject = `manifest ${desc.digest}`;
  const doc = parseJSONObject(bytes, subject);
  validateDocument(doc, desc.mediaType, subject);
  const config = checkDescriptor(doc.config, `${subject}: config`);
  if (!Array.isArray(doc.layers)) throw new InvalidArgumentError(`${subject}: layers must be an array`);
  const layers = doc.layers.map((l, i) => checkDescriptor(l, `${subject}: layers[${i}]`));
  return { ...(doc as unknown as Manifest), config, layers };
}

/** Parses and checks index bytes (as stored under `desc`). */
export function decodeIndex(bytes: Uint8Array, desc: Pick<Descriptor, "mediaType" | "digest">): Index {
  const subject = `index ${desc.digest}`;
  const doc = parseJSONObject(bytes, subject);
  validateDocument(doc, desc.mediaType, subject);
  if (!Array.isArray(doc.manifests)) throw new InvalidArgumentError(`${subject}: manifests must be an array`);
  const manifests = doc.manifests.map((m, i) => checkDescriptor(m, `${subject}: manifests[${i}]`));
  return { ...(doc as unknown as Index), manifests };
}

/**
 * The immediate children of a descriptor: a manifest's config and layers, an index's manifests, nothing for
 * other types. Schema 1 is NotImplemented; unreadable blobs are NotFound; malformed JSON is InvalidArgument.
 */
export async function children(ctx: Ctx, provider: Provider, desc: Descriptor): Promise<Descriptor[]> {
  rejectSchema1(desc);
  if (isManifestType(desc.mediaType)) {
    const m = decodeManifest(await readBlob(ctx, provider, desc), desc);
    return [m.config, ...m.layers];
  }
  if (isIndexType(desc.mediaType)) {
    const idx = decodeIndex(await readBlob(ctx, provider, desc), desc);
    return [...idx.manifests];
  }
  return [];
}

/** A handler returning `children()`. */
export function childrenHandler(provider: Provider): Handler {
  return (ctx, desc) => children(ctx, provider, desc);
}

/** The normalised platform recorded in an image config. */
export async function configPlatform(ctx: Ctx, provider: Provider, configDesc: Descriptor): Promise<Platform> {
  const doc = parseJSONObject(await readBlob(ctx, provider, configDesc), `config ${configDesc.digest}`);
  const p: Platform = {
    architecture: typeof doc.architecture === "string" ? doc.architecture : "",
    os: typeof doc.os === "string" ? doc.os : "",
  };
  if (typeof doc["os.version"] === "string" && doc["os.version"] !== "") p["os.version"] = doc["os.version"];
  if (Array.isArray(doc["os.features"]) && doc["os.features"].length > 0) {
    p["os.features"] = doc["os.features"].filter((f): f is string => typeof f === "string");
  }
  if (typeof doc.variant === "string" && doc.variant !== "") p.variant = doc.variant;
  return normalize(p);
}

/** A platform's manifest, with the descriptor it was read from. */
export interface ResolvedManifest {
  readonly descriptor: Descriptor;
  readonly manifest: Manifest;
}

/**
 * Resolves the manifest of an image for a platform (containerd's images.Manifest): in an index, the best
 * match by the comparer's order (entries without a platform are judged by their config); a plain manifest is
 * returned as is. NotFound ("no match for platform in manifest …") when nothing matches.
 */
export async function resolveManifest(
  ctx: Ctx,
  provider: Provider,
  target: Descriptor,
  platform?: MatchComparer,
): Promise<ResolvedManifest> {
  const found: ResolvedManifest[] = [];
  let wasIndex = false;
  await walk(
    ctx,
    async (c, desc) => {
      rejectSchema1(desc);
      if (isManifestType(desc.mediaType)) {
        const manifest = decodeManifest(await readBlob(c, provider, desc), desc);
        if (desc.digest !== target.digest && platform !== undefined) {
          if (desc.platform !== undefined && !platform.match(desc.platform)) return [];
          if (desc.platform === undefined && !platform.match(await configPlatform(c, provider, manifest.config))) {
            return [];
          }
        }
        found.push({ descriptor: desc, manifest });
        return [];
      }
      if (isIndexType(desc.mediaType)) {
        const idx = decodeIndex(await readBlob(c, provider, desc), desc);
        wasIndex = true;
        if (platform === undefined) return idx.manifests;
        const limited = limitManifests(
          async () => idx.manifests.filter((d) => d.platform === undefined || platform.match(d.platform)),
          platform,
          0,
        );
        const r = await limited(c, desc);
        return typeof r === "symbol" ? r : r.slice(0, 1);
      }
      throw new NotFoundError(`unexpected media type ${desc.mediaType} for ${desc.digest}`);
    },
    [target],
  );
  const first = found[0];
  if (first === undefined) {
    throw new NotFoundError(
      wasIndex ? `no match for platform in manifest ${target.digest}` : `manifest ${target.digest}`,
    );
  }
  return first;
}

/** The config descriptor of an image's manifest for a platform. */
export async function resolveConfig(
  ctx: Ctx,
  provider: Provider,
  target: Descriptor,
  platform?: MatchComparer,
): Promise<Descriptor> {
  return (await resolveManifest(ctx, provider, target, platform)).manifest.config;
}

/** Reads and checks an image config (InvalidArgument when it is not one). */
export async function readConfig(ctx: Ctx, provider: Provider, configDesc: Descriptor): Promise<ImageConfig> {
  if (!isImageConfigType(configDesc.mediaType)) {
    throw new InvalidArgumentError(`${describe(configDesc)}: not an image config`);
  }
  const subject = `config ${configDesc.digest}`;
  const doc = parseJSONObject(await readBlob(ctx, provider, configDesc), subject);
  const rootfs = doc.rootfs as Record<string, unknown> | undefined;
  const diffIDs = rootfs?.diff_ids ?? [];
  if (!Array.isArray(diffIDs) || diffIDs.some((d) => digestProblem(d) !== undefined)) {
    throw new InvalidArgumentError(`${subject}: rootfs.diff_ids must be an array of digests`);
  }
  return doc as unknown as ImageConfig;
}

/** The uncompressed layer digests (`rootfs.diff_ids`) of a config, bottom first. */
export async function rootFS(ctx: Ctx, provider: Provider, configDesc: Descriptor): Promise<Digest[]> {
  const config = await readConfig(ctx, provider, configDesc);
  return [...(config.rootfs?.diff_ids ?? [])];
}

/** The diffIDs of an image for a platform. */
export async function diffIDs(
  ctx: Ctx,
  provider: Provider,
  target: Descriptor,
  platform?: MatchComparer,
): Promise<Digest[]> {
  return rootFS(ctx, provider, await resolveConfig(ctx, provider, target, platform));
}

/**
 * The platforms an image supports: those of index entries (skipping `unknown` ones, such as attestations),
 * else those of the configs.
 */
export async function imagePlatforms(ctx: Ctx, provider: Provider, target: Descriptor): Promise<Platform[]> {
  const out: Platform[] = [];
  await walk(
    ctx,
    handlers(async (c, desc) => {
      if (desc.platform !== undefined) {
        if (desc.platform.os !== "unknown" && desc.platform.architecture !== "unknown") out.push(desc.platform);
        return SkipDesc;
      }
      if (isImageConfigType(desc.mediaType)) {
        out.push(await configPlatform(c, provider, desc));
      }
      return [];
    }, childrenHandler(provider)),
    [target],
  );
  return out;
}

/** What `check` found. */
export interface CheckResult {
  /** False when the manifest for the platform could not be resolved. */
  readonly available: boolean;
  readonly required: Descriptor[];
  readonly present: Descriptor[];
  readonly missing: Descriptor[];
}

/**
 * Whether an image's manifest, config and layers for a platform are all in the store (containerd's
 * images.Check): when the manifest cannot be resolved, the target itself is reported missing.
 */
export async function check(
  ctx: Ctx,
  provider: Provider,
  target: Descriptor,
  platform?: MatchComparer,
): Promise<CheckResult> {
  let manifest: Manifest;
  try {
    manifest = (await resolveManifest(ctx, provider, target, platform)).manifest;
  } catch (err) {
    if (isNotFound(err)) return { available: false, required: [target], present: [], missing: [target] };
    throw err;
  }
  const required = [manifest.config, ...manifest.layers];
  const present: Descriptor[] = [];
  const missing: Descriptor[] = [];
  for (const desc of required) {
    try {
      const ra = await provider.readerAt(ctx, desc);
      await ra.close();
      present.push(desc);
    } catch (err) {
      if (!isNotFound(err)) throw err;
      missing.push(desc);
    }
  }
  return { available: true, required, present, missing };
}

/**
 * The packed size of an image for a platform: the target, the best matching manifest, its config and layers
 * (containerd's Image.Size).
 */
export async function imageSize(
  ctx: Ctx,
  provider: Provider,
  target: Descriptor,
  platform: MatchComparer,
): Promise<number> {
  let size = 0;
  await walk(
    ctx,
    handlers(
      async (_c, desc) => {
        if (desc.size < 0)
          throw new InvalidArgumentError(`invalid size ${desc.size} in ${desc.digest} (${desc.mediaType})`);
        size += desc.size;
        return [];
      },
      limitManifests(filterPlatforms(childrenHandler(provider), platform), platform, 1),
    ),
    [target],
  );
  return size;
}

export interface UsageOptions {
  /**
   * Walk only the best `manifestLimit` manifests of each index for this platform (0 = every matching one);
   * then missing manifests are errors. Without it every manifest that exists is counted, and missing ones
   * are ignored.
   */
  readonly platform?: MatchComparer;
  readonly manifestLimit?: number;
  /** Count the sizes the manifests declare rather than what the store holds. */
  readonly manifestOnly?: boolean;
}

/**
 * The bytes an image's content takes in the store (containerd's usage.CalculateImageUsage, without
 * snapshots).
 */
export async function imageUsage(
  ctx: Ctx,
  store: Provider & Pick<Manager, "info">,
  target: Descriptor,
  options: UsageOptions = {},
): Promise<number> {
  let handler = childrenHandler(store);
  const mustExist = options.platform !== undefined;
  if (options.platform !== undefined) handler = limitManifests(handler, options.platform, options.manifestLimit ?? 0);
  let total = 0;
  await walk(
    ctx,
    async (c, desc) => {
      let size = desc.size;
      let result: Awaited<ReturnType<Handler>> = [];
      try {
        result = await handler(c, desc);
        if (!options.manifestOnly) {
          let info: Info | undefined;
          try {
            info = await store.info(c, desc.digest);
          } catch (err) {
            if (!isNotFound(err)) throw err;
          }
          if (info === undefined) size = 0;
          else if (info.size > size) size = info.size;
        }
      } catch (err) {
        if (!isNotFound(err) || mustExist) throw err;
        if (!options.manifestOnly) size = 0;
      }
      if (size >= 0) total += size;
      return result;
    },
    [target],
  );
  return total;
}

/**
 * Importing an image archive into a content store (containerd's archive.ImportIndex), streaming: OCI image
 * layouts (`oci-layout`, `index.json`, `blobs/<alg>/<hex>`) and Docker `save` archives (`manifest.json`,
 * `<config>.json`, `<id>/layer.tar`), gzip-compressed or not. Every blob goes straight into the store; a blob
 * named by its digest must hash to that digest. For Docker archives an OCI index and Docker manifests are
 * synthesised as containerd does, byte for byte.
 */
import { randomUUID } from "node:crypto";
import { posix } from "node:path";
import type { ContentStore, Ctx } from "@berth/content-store";
import { InvalidArgumentError, errorKind, isAlreadyExists } from "@berth/errdefs";
import {
  type Descriptor,
  type Digest,
  type DigestAlgorithm,
  ImageIndexFile,
  ImageLayoutFile,
  ImageLayoutVersion,
  type Index,
  MediaTypeDockerSchema2Config,
  MediaTypeDockerSchema2Layer,
  MediaTypeDockerSchema2LayerGzip,
  MediaTypeDockerSchema2LayerZstd,
  MediaTypeDockerSchema2Manifest,
  MediaTypeImageIndex,
  createDigester,
  digestOf,
  digestProblem,
  isDockerSchema1Type,
  isIndexType,
  isManifestType,
  isSupportedAlgorithm,
} from "@berth/oci-spec";
import { configPlatform, decodeIndex, parseJSONObject } from "../image.js";
import { goIndex, goManifest, goMarshal } from "../internal/gojson.js";
import { AnnotationImageName } from "../labels.js";
import { normalizeReference, ociReferenceName } from "../reference.js";
import { type ByteSource, maybeGunzip, readAll, readTar } from "./tar.js";

/** The default cap on `index.json`, `manifest.json` and `oci-layout` (containerd's 20 MiB). */
export const DefaultMaxJSONSize = 20 << 20;

export interface ImportIndexOptions {
  /** Cap on the archive's JSON metadata files; larger ones fail the import (InvalidArgument). */
  readonly maxJSONSize?: number;
  /** Called after each blob is stored (for progress). */
  readonly onBlob?: (blob: { name: string; digest: Digest; size: number }) => void;
}

export interface ImportedIndex {
  /** The OCI index describing the archive's images (the archive's own `index.json`, or synthesised). */
  readonly index: Descriptor;
  readonly format: "oci" | "docker";
}

const BLOB_NAME_RE = /^blobs\/([^/]+)\/([^/]+)$/;

function invalid(message: string, cause?: unknown): Error {
  return new InvalidArgumentError(message, cause === undefined ? undefined : { cause });
}

/**
 * A tar entry name made relative and clean; InvalidArgument for absolute names, `..` components (traversal) and
 * NUL bytes.
 */
export function cleanEntryName(name: string): string {
  if (name.includes("\0")) throw invalid(`archive entry ${JSON.stringify(name)}: invalid name`);
  if (name.startsWith("/")) throw invalid(`archive entry ${JSON.stringify(name)}: absolute path not allowed`);
  if (name.split("/").includes("..")) {
    throw invalid(`archive entry ${JSON.stringify(name)}: path traversal not allowed`);
  }
  let clean = posix.normalize(name);
  while (clean.startsWith("./")) clean = clean.slice(2);
  if (clean.endsWith("/")) clean = clean.slice(0, -1);
  return clean;
}

interface BlobRef {
  readonly digest: Digest;
  readonly size: number;
}

async function abortQuietly(ctx: Ctx, store: ContentStore, ref: string): Promise<void> {
  try {
    await store.abort(ctx, ref);
  } catch {
    // nothing to clean up
  }
}

/**
 * Bytes gathered before one `writer.write` (a remote writer's message size): archive reads arrive in chunks of
 * about this size, which go out as they are, without a copy; only small pieces are joined.
 */
const WRITE_BATCH = 1 << 20;

/** `unexpected commit digest <actual>, expected …` (containerd's and Berth's stores). */
const COMMIT_DIGEST_RE = /unexpected commit digest ([a-z0-9]+:[a-f0-9]+)/;

/**
 * Streams one blob into the store. With `expected`, the content must hash to it (InvalidArgument naming the
 * entry otherwise, and nothing is committed). Writes overlap reading: while one write is on its way to the
 * store the next chunk is read (one write in flight, so any store's writer sees them in order). When the store
 * writes the blob, its commit check of the expected digest (every store makes it) stands in for hashing here,
 * which saves the client a second SHA-256 pass over the data.
 */
async function ingest(
  ctx: Ctx,
  store: ContentStore,
  name: string,
  body: AsyncIterable<Uint8Array>,
  size: number,
  expected?: Digest,
): Promise<BlobRef> {
  const algorithm: DigestAlgorithm = expected
    ? (expected.slice(0, expected.indexOf(":")) as DigestAlgorithm)
    : "sha256";
  const digester = createDigester(algorithm);
  const ref = `import-${randomUUID()}`;
  const mismatch = (actual: string) =>
    invalid(`blob ${name}: content digest ${actual} does not match its name (expected ${expected})`);
  let writer: Awaited<ReturnType<ContentStore["writer"]>> | undefined;
  try {
    writer = await store.writer(ctx, { ref, desc: expected ? { digest: expected, size } : { size } });
  } catch (err) {
    if (!(expected && isAlreadyExists(err))) throw err;
  }
  if (writer === undefined) {
    // Already stored: still read and verify the archive's copy.
    for await (const chunk of body) digester.update(chunk);
    const actual = digester.digest();
    if (actual !== expected) throw mismatch(actual);
    return { digest: actual, size: digester.size };
  }
  const w = writer;
  let pending: Promise<unknown> | undefined;
  try {
    // A store may answer with the blob already in place (a metadata store linking a blob another namespace
    // holds reports offset = size, as containerd's does): then only verify the archive's copy and commit.
    const { offset } = await w.status();
    const linked = expected !== undefined && offset > 0 && offset === size;
    if (offset > 0 && !linked) await w.truncate(0);
    // Hash here unless the store's commit checks the digest for us.
    const hashing = linked || expected === undefined;
    let batch: Uint8Array[] = [];
    let batchBytes = 0;
    let read = 0;
    const flush = async () => {
      const data = batch.length === 1 ? (batch[0] as Uint8Array) : Buffer.concat(batch, batchBytes);
      batch = [];
      batchBytes = 0;
      if (pending !== undefined) await pending;
      pending = w.write(data);
      pending.catch(() => {}); // surfaces at the next await
    };
    for await (const chunk of body) {
      read += chunk.byteLength;
      if (hashing) digester.update(chunk);
      if (linked || chunk.byteLength === 0) continue;
      batch.push(chunk);
      batchBytes += chunk.byteLength;
      if (batchBytes >= WRITE_BATCH) await flush();
    }
    if (batchBytes > 0) await flush();
    if (pending !== undefined) await pending;
    const actual = hashing ? digester.digest() : (expected as Digest);
    if (expected !== undefined && actual !== expected) throw mismatch(actual);
    if (read !== size) throw invalid(`blob ${name}: read ${read} bytes, header says ${size}`);
    try {
      await w.commit(size, actual);
    } catch (err) {
      if (isAlreadyExists(err)) return { digest: actual, size };
      const wrong = hashing ? null : COMMIT_DIGEST_RE.exec(err instanceof Error ? err.message : String(err));
      if (wrong) throw mismatch(wrong[1] as string);
      throw err;
    }
    return { digest: actual, size };
  } catch (err) {
    await pending?.catch(() => {});
    await w.close().catch(() => {});
    await abortQuietly(ctx, store, ref);
    throw err;
  }
}

async function writeJSONBlob(ctx: Ctx, store: ContentStore, bytes: Uint8Array, mediaType: string): Promise<Descriptor> {
  const digest = digestOf(bytes);
  const ref = `import-${randomUUID()}`;
  let writer: Awaited<ReturnType<ContentStore["writer"]>>;
  try {
    writer = await store.writer(ctx, { ref, desc: { digest, size: bytes.byteLength, mediaType } });
  } catch (err) {
    if (isAlreadyExists(err)) return { mediaType, digest, size: bytes.byteLength };
    throw err;
  }
  try {
    // already linked in (offset = size, see ingest): commit without writing
    const { offset } = await writer.status();
    if (offset !== bytes.byteLength) {
      if (offset > 0) await writer.truncate(0);
      await writer.write(bytes);
    }
    await writer.commit(bytes.byteLength, digest);
  } catch (err) {
    if (!isAlreadyExists(err)) {
      await writer.close().catch(() => {});
      await abortQuietly(ctx, store, ref);
      throw err;
    }
  }
  return { mediaType, digest, size: bytes.byteLength };
}

interface DockerManifestEntry {
  readonly Config: string;
  readonly RepoTags: readonly string[];
  readonly Layers: readonly string[];
}

function parseDockerManifests(bytes: Buffer): DockerManifestEntry[] {
  let doc: unknown;
  try {
    doc = JSON.parse(bytes.toString("utf8"));
  } catch (err) {
    throw invalid("manifest.json: invalid JSON", err);
  }
  if (!Array.isArray(doc)) throw invalid("manifest.json: expected a JSON array");
  return doc.map((m, i) => {
    const where = `manifest.json: entry ${i}`;
    if (m === null || typeof m !== "object" || Array.isArray(m)) throw invalid(`${where}: expected an object`);
    const e = m as Record<string, unknown>;
    if (typeof e.Config !== "string" || e.Config === "") throw invalid(`${where}: Config must be a file name`);
    const tags = e.RepoTags ?? [];
    if (!Array.isArray(tags) || tags.some((t) => typeof t !== "string")) {
      throw invalid(`${where}: RepoTags must be an array of strings`);
    }
    const layers = e.Layers ?? [];
    if (!Array.isArray(layers) || layers.some((l) => typeof l !== "string")) {
      throw invalid(`${where}: Layers must be an array of strings`);
    }
    return { Config: e.Config, RepoTags: tags as string[], Layers: layers as string[] };
  });
}

/** The Docker layer media type for a stored blob, from its first bytes (gzip, zstd or plain tar). */
async function detectLayerMediaType(ctx: Ctx, store: ContentStore, blob: BlobRef): Promise<string> {
  const ra = await store.readerAt(ctx, { digest: blob.digest, size: blob.size });
  try {
    const head = await ra.readAt(0, 4);
    if (head.byteLength >= 2 && head[0] === 0x1f && head[1] === 0x8b) return MediaTypeDockerSchema2LayerGzip;
    if (head.byteLength >= 4 && head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f && head[3] === 0xfd) {
      return MediaTypeDockerSchema2LayerZstd;
    }
    return MediaTypeDockerSchema2Layer;
  } finally {
    await ra.close();
  }
}

/** Top-level entries of an OCI layout's index.json must be manifests or indexes. */
function checkLayoutIndex(bytes: Buffer, digest: Digest): Index {
  const idx = decodeIndex(bytes, { mediaType: MediaTypeImageIndex, digest });
  idx.manifests.forEach((m, i) => {
    if (isDockerSchema1Type(m.mediaType)) {
      throw invalid(`index.json: manifests[${i}]: media-type: schema 1 not supported (${m.mediaType})`);
    }
    if (!isManifestType(m.mediaType) && !isIndexType(m.mediaType)) {
      throw invalid(`index.json: manifests[${i}]: unsupported media type ${m.mediaType}`);
    }
  });
  return idx;
}

/**
 * Reads an image archive and stores its blobs, returning the index that describes its images. Fails with
 * InvalidArgument for hostile or malformed archives (traversal, oversized or non-JSON metadata, unknown
 * formats, blobs that do not match their names, truncated tars); blobs stored before the failure are left for
 * the garbage collector (callers hold a lease), and nothing is written outside the store.
 */
export async function importIndex(
  ctx: Ctx,
  store: ContentStore,
  source: ByteSource,
  options: ImportIndexOptions = {},
): Promise<ImportedIndex> {
  const maxJSON = options.maxJSONSize ?? DefaultMaxJSONSize;
  const tooLarge = (name: string) => () => invalid(`${name}: larger than the ${maxJSON} byte limit`);
  let layout: Record<string, unknown> | undefined;
  let dockerManifests: DockerManifestEntry[] | undefined;
  let indexBytes: Buffer | undefined;
  const blobs = new Map<string, BlobRef>();
  const symlinks = new Map<string, string>();

  try {
    for await (const { header, body } of readTar(maybeGunzip(source))) {
      ctx.signal?.throwIfAborted();
      const type = header.type ?? "file";
      if (type === "symlink") {
        const name = cleanEntryName(header.name);
        const link = header.linkname ?? "";
        if (link.startsWith("/")) throw invalid(`archive entry ${JSON.stringify(header.name)}: absolute link target`);
        const target = posix.join(posix.dirname(name), link);
        if (target === ".." || target.startsWith("../")) {
          throw invalid(`archive entry ${JSON.stringify(header.name)}: link target outside the archive`);
        }
        symlinks.set(name, target);
        continue;
      }
      if (type !== "file" && type !== "contiguous-file") continue;
      const name = cleanEntryName(header.name);
      const size = header.size ?? 0;
      if (name === ImageLayoutFile) {
        layout = parseJSONObject(await readAll(body, maxJSON, tooLarge(name)), name);
      } else if (name === "manifest.json") {
        dockerManifests = parseDockerManifests(await readAll(body, maxJSON, tooLarge(name)));
      } else if (name === ImageIndexFile) {
        indexBytes = await readAll(body, maxJSON, tooLarge(name));
      } else if (name === "repositories") {
        // Docker v1 metadata; the tags are in manifest.json.
      } else {
        const m = BLOB_NAME_RE.exec(name);
        let expected: Digest | undefined;
        if (m !== null) {
          const candidate = `${m[1]}:${m[2]}`;
          if (!isSupportedAlgorithm(m[1]))
            throw invalid(`blob ${name}: unsupported digest algorithm ${JSON.stringify(m[1])}`);
          const problem = digestProblem(candidate);
          if (problem !== undefined) throw invalid(`blob ${name}: name is not a valid digest: ${problem}`);
          expected = candidate as Digest;
        }
        const blob = await ingest(ctx, store, name, body, size, expected);
        blobs.set(name, blob);
        options.onBlob?.({ name, digest: blob.digest, size: blob.size });
      }
    }
  } catch (err) {
    if (errorKind(err) !== "Unknown") throw err;
    const message = err instanceof Error ? err.message : String(err);
    throw invalid(`invalid archive: ${message}`, err);
  }

  if (layout !== undefined) {
    const version = layout.imageLayoutVersion;
    if (version !== ImageLayoutVersion) throw invalid(`unsupported OCI version ${String(version)}`);
    if (indexBytes === undefined) throw invalid(`missing index.json in OCI layout ${ImageLayoutVersion}`);
    checkLayoutIndex(indexBytes, digestOf(indexBytes));
    const index = await writeJSONBlob(ctx, store, indexBytes, MediaTypeImageIndex);
    return { index, format: "oci" };
  }
  if (dockerManifests === undefined) throw invalid("unrecognized image format");
  if (dockerManifests.length === 0) throw invalid("manifest.json: no images in archive");

  for (const [name, target] of symlinks) {
    const blob = blobs.get(target);
    if (blob === undefined)
      throw invalid(`no target for symlink layer from ${JSON.stringify(name)} to ${JSON.stringify(target)}`);
    blobs.set(name, blob);
  }
  const lookup = (file: string): BlobRef | undefined => {
    try {
      return blobs.get(cleanEntryName(file));
    } catch {
      return undefined;
    }
  };

  const manifests: Descriptor[] = [];
  for (const mfst of dockerManifests) {
    const config = lookup(mfst.Config);
    if (config === undefined) throw invalid(`image config ${JSON.stringify(mfst.Config)} not found`);
    const configDesc: Descriptor = {
      mediaType: MediaTypeDockerSchema2Config,
      digest: config.digest,
      size: config.size,
    };
    const layers: Descriptor[] = [];
    for (const f of mfst.Layers) {
      const blob = lookup(f);
      if (blob === undefined) throw invalid(`failed to resolve layers: layer ${JSON.stringify(f)} not found`);
      layers.push({ mediaType: await detectLayerMediaType(ctx, store, blob), digest: blob.digest, size: blob.size });
    }
    const bytes = Buffer.from(
      goMarshal(
        goManifest({ schemaVersion: 2, mediaType: MediaTypeDockerSchema2Manifest, config: configDesc, layers }),
      ),
    );
    const desc: Descriptor = await writeJSONBlob(ctx, store, bytes, MediaTypeDockerSchema2Manifest);
    const platform = await configPlatform(ctx, store, configDesc);
    const withPlatform: Descriptor = { ...desc, platform };
    if (mfst.RepoTags.length === 0) {
      manifests.push(withPlatform);
    } else {
      for (const tag of mfst.RepoTags) {
        let normalized: string;
        try {
          normalized = normalizeReference(tag);
        } catch (err) {
          throw invalid(`normalize image ref ${JSON.stringify(tag)}`, err);
        }
        manifests.push({
          ...withPlatform,
          annotations: {
            [AnnotationImageName]: normalized,
            "org.opencontainers.image.ref.name": ociReferenceName(normalized),
          },
        });
      }
    }
  }
  const indexJSON = Buffer.from(goMarshal(goIndex({ schemaVersion: 2, manifests })));
  const index = await writeJSONBlob(ctx, store, indexJSON, MediaTypeImageIndex);
  return { index, format: "docker" };
}

/**
 * Exporting images as an OCI image layout archive (containerd's archive.Export), with Docker's `manifest.json`
 * beside it by default, streamed into a Writable: blobs are read from the store one at a time and verified
 * against their digests while they are written.
 */
import type { Writable } from "node:stream";
import type { Ctx, Manager, Provider } from "@berth/content-store";
import { DataLossError, InvalidArgumentError, NotFoundError } from "@berth/errdefs";
import {
  AnnotationRefName,
  type Descriptor,
  type Digest,
  ImageBlobsDir,
  ImageIndexFile,
  ImageLayoutFile,
  ImageLayoutVersion,
  createDigester,
  isIndexType,
  isManifestType,
  isNonDistributableLayerType,
  parseDigest,
} from "@berth/oci-spec";
import { type Handler, handlers, walk } from "../handlers.js";
import { childrenHandler, decodeIndex, decodeManifest, readBlob } from "../image.js";
import { goIndex, goMarshal } from "../internal/gojson.js";
import { AnnotationImageName, LabelDistributionSource } from "../labels.js";
import type { MatchComparer } from "../platforms/platforms.js";
import { familiarizeReference, ociReferenceName } from "../reference.js";
import { type TarRecord, writeTar } from "./tar.js";

export interface ExportImage {
  /** The name recorded in the archive (`io.containerd.image.name`, the OCI ref name and Docker's RepoTags). */
  readonly name?: string;
  readonly target: Descriptor;
}

export interface ExportOptions {
  /**
   * The platforms to export from indexes (ctr's default is the host's, strictly:
   * `defaultStrict()`); also picks the manifest Docker's manifest.json names. Without it every platform is
   * exported and manifest.json lists no index.
   */
  readonly platform?: MatchComparer;
  /** Export every platform's content (missing content fails the export); `platform` still picks manifest.json's. */
  readonly allPlatforms?: boolean;
  /** Leave out Docker's manifest.json. */
  readonly skipDockerManifest?: boolean;
  /** Leave out non-distributable (foreign) layers. */
  readonly skipNonDistributable?: boolean;
}

type ExportStore = Provider & Partial<Pick<Manager, "info">>;

function blobPath(digest: Digest): string {
  const { algorithm, encoded } = parseDigest(digest);
  return `${ImageBlobsDir}/${algorithm}/${encoded}`;
}

function addNameAnnotation(name: string, base: Record<string, string> | undefined): Record<string, string> {
  return { ...base, [AnnotationImageName]: name, [AnnotationRefName]: ociReferenceName(name) };
}

function blobRecord(ctx: Ctx, store: Provider, desc: Descriptor, options: ExportOptions): TarRecord | undefined {
  if (options.skipNonDistributable && isNonDistributableLayerType(desc.mediaType)) return undefined;
  return {
    name: blobPath(desc.digest),
    mode: 0o444,
    type: "file",
    size: desc.size,
    data: async function* () {
      const ra = await store.readerAt(ctx, desc);
      const d = createDigester(parseDigest(desc.digest).algorithm);
      try {
        for await (const chunk of ra.stream(0)) {
          d.update(chunk);
          yield chunk;
        }
      } finally {
        await ra.close();
      }
      const actual = d.digest();
      if (actual !== desc.digest) throw new DataLossError(`blob ${desc.digest}: unexpected digest ${actual} copied`);
    },
  };
}

async function treeRecords(
  ctx: Ctx,
  store: Provider,
  desc: Descriptor,
  algorithms: Set<string>,
  options: ExportOptions,
): Promise<TarRecord[]> {
  const records: TarRecord[] = [];
  const record: Handler = async (_c, d) => {
    algorithms.add(parseDigest(d.digest).algorithm);
    const r = blobRecord(ctx, store, d, options);
    if (r !== undefined) records.push(r);
    return [];
  };
  await walk(ctx, handlers(childrenHandler(store), record), [desc]);
  return records;
}

function stableSortByPlatform(descs: Descriptor[], m: MatchComparer): Descriptor[] {
  return descs
    .map((d, i) => ({ d, i }))
    .sort((a, b) => {
      const pa = a.d.platform;
      const pb = b.d.platform;
      if (pa === undefined && pb === undefined) return a.i - b.i;
      if (pa === undefined) return 1;
      if (pb === undefined) return -1;
      if (m.less(pa, pb)) return -1;
      if (m.less(pb, pa)) return 1;
      return a.i - b.i;
    })
    .map((x) => x.d);
}

/**
 * Writes an OCI image layout archive of the images into `out`: `oci-layout`, `index.json` (one entry per
 * image, named by `io.containerd.image.name` and `org.opencontainers.image.ref.name`), `blobs/<alg>/<hex>` and,
 * unless skipped, Docker's `manifest.json`. Only manifests and indexes can be exported (InvalidArgument);
 * NotFound when an index has no manifest for the platform or a needed blob is missing.
 */
export async function exportArchive(
  ctx: Ctx,
  store: ExportStore,
  images: readonly ExportImage[],
  out: Writable,
  options: ExportOptions = {},
): Promise<void> {
  const records: TarRecord[] = [];
  const layout = Buffer.from(JSON.stringify({ imageLayoutVersion: ImageLayoutVersion }));
  records.push({ name: ImageLayoutFile, mode: 0o444, type: "file", size: layout.byteLength, data: () => layout });

  const manifests: Descriptor[] = [];
  for (const img of images) {
    let desc: Descriptor = img.name
      ? { ...img.target, annotations: addNameAnnotation(img.name, img.target.annotations) }
      : img.target;
    if (store.info !== undefined) {
      const info = await store.info(ctx, desc.digest);
      const sources = Object.entries(info.labels).filter(([k]) => k.startsWith(LabelDistributionSource));
      if (sources.length > 0) desc = { ...desc, annotations: { ...desc.annotations, ...Object.fromEntries(sources) } };
    }
    manifests.push(desc);
  }
  if (manifests.length === 0) throw new InvalidArgumentError("nothing to export");

  const algorithms = new Set<string>();
  const dockerManifests = new Map<string, { manifest: Descriptor; names: string[] }>();
  const resolvedIndex = new Map<string, string>();
  for (const desc of manifests) {
    const name = desc.annotations?.[AnnotationImageName];
    if (isManifestType(desc.mediaType)) {
      let entry = dockerManifests.get(desc.digest);
      if (entry === undefined) {
        records.push(...(await treeRecords(ctx, store, desc, algorithms, options)));
        entry = { manifest: desc, names: [] };
        dockerManifests.set(desc.digest, entry);
      }
      if (name) entry.names.push(name);
    } else if (isIndexType(desc.mediaType)) {
      let chosen = resolvedIndex.get(desc.digest);
      if (chosen === undefined) {
        algorithms.add(parseDigest(desc.digest).algorithm);
        const r = blobRecord(ctx, store, desc, options);
        if (r !== undefined) records.push(r);
        const index = decodeIndex(await readBlob(ctx, store, desc), desc);
        let matching: Descriptor[] = [];
        for (const m of index.manifests) {
          if (options.platform !== undefined) {
            if (m.platform === undefined || options.platform.match(m.platform)) matching.push(m);
            else if (!options.allPlatforms) continue;
          }
          records.push(...(await treeRecords(ctx, store, m, algorithms, options)));
        }
        chosen = "";
        if (matching.length >= 1 && options.platform !== undefined) {
          matching = stableSortByPlatform(matching, options.platform);
          const best = matching[0] as Descriptor;
          chosen = best.digest;
          if (isManifestType(best.mediaType)) dockerManifests.set(chosen, { manifest: best, names: [] });
          else chosen = "";
        } else if (options.platform !== undefined) {
          throw new NotFoundError(`no manifest found for platform in ${desc.digest}`);
        }
        resolvedIndex.set(desc.digest, chosen);
      }
      if (chosen !== "" && name) dockerManifests.get(chosen)?.names.push(name);
    } else {
      throw new InvalidArgumentError(`only manifests may be exported, not ${desc.mediaType} ${desc.digest}`);
    }
  }

  const indexJSON = Buffer.from(goMarshal(goIndex({ schemaVersion: 2, manifests })));
  records.push({ name: ImageIndexFile, mode: 0o644, type: "file", size: indexJSON.byteLength, data: () => indexJSON });

  if (!options.skipDockerManifest && dockerManifests.size > 0) {
    const entries: unknown[] = [];
    for (const { manifest, names } of dockerManifests.values()) {
      const m = decodeManifest(await readBlob(ctx, store, manifest), manifest);
      entries.push({
        Config: blobPath(m.config.digest),
        RepoTags: names.length > 0 ? names.map(familiarizeReference) : null,
        Layers: m.layers.length > 0 ? m.layers.map((l) => blobPath(l.digest)) : null,
      });
    }
    const bytes = Buffer.from(goMarshal(entries));
    records.push({ name: "manifest.json", mode: 0o644, type: "file", size: bytes.byteLength, data: () => bytes });
  }

  if (algorithms.size > 0) {
    records.push({ name: `${ImageBlobsDir}/`, mode: 0o755, type: "directory", size: 0 });
    for (const alg of algorithms)
      records.push({ name: `${ImageBlobsDir}/${alg}/`, mode: 0o755, type: "directory", size: 0 });
  }
  await writeTar(records, out);
}

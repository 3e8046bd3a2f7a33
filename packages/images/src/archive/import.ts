/**
 * Importing an archive as images (containerd's client.Import with ctr's naming options): stores the blobs, sets
 * the GC labels on indexes and manifests, and returns the images to register, name → target. Registering
 * them is the caller's job (the images service), so a failed import registers nothing.
 */
import type { ContentStore, Ctx } from "@berth/content-store";
import { InvalidArgumentError } from "@berth/errdefs";
import { AnnotationRefName } from "@berth/oci-spec";
import { type Handler, filterPlatforms, setChildrenLabels, walkNotEmpty } from "../handlers.js";
import { type Image, children, decodeIndex, readBlob } from "../image.js";
import { AnnotationImageName, childGCLabelsFilterLayers } from "../labels.js";
import { type MatchComparer, all, defaultMatcher } from "../platforms/platforms.js";
import { type ImportIndexOptions, type ImportedIndex, importIndex } from "./importer.js";
import type { ByteSource } from "./tar.js";

function isImagePrefix(s: string, prefix: string): boolean {
  if (!s.startsWith(prefix)) return false;
  if (s.length > prefix.length) {
    const c = s[prefix.length];
    return c === "/" || c === ":" || c === "@";
  }
  return true;
}

function refTranslator(image: string, checkPrefix: boolean): (ref: string) => string {
  return (ref) => {
    if (image === "") return "";
    if (/[/:@]/.test(ref)) {
      if (checkPrefix && !isImagePrefix(ref, image)) {
        // A fully qualified ref (docker.io/library/nginx:latest) still matches a short image name (nginx).
        const last = ref.split("/").at(-1) ?? "";
        const c = last[image.length];
        if (last.startsWith(image) && (last.length === image.length || c === ":" || c === "@")) return ref;
        return "";
      }
      return ref;
    }
    return `${image}:${ref}`;
  };
}

/** ctr `--base-name`: keeps only refs under `image` and prefixes tag-only refs with it. */
export function filterRefPrefix(image: string): (ref: string) => string {
  return refTranslator(image, true);
}

/** ctr's default: prefixes tag-only refs with `image`, keeps full refs. */
export function addRefPrefix(image: string): (ref: string) => string {
  return refTranslator(image, false);
}

/** ctr `--digests`: `prefix@sha256:…`. */
export function digestTranslator(prefix: string): (digest: string) => string {
  return (digest) => `${prefix}@${digest}`;
}

export interface ImportOptions extends ImportIndexOptions {
  /** ctr `--index-name`: also register the index itself under this name. */
  readonly indexName?: string;
  /**
   * ctr `--base-name`: only refs with this prefix are imported and tag-only OCI refs get it. Without it tag-only
   * refs get `import-<yyyy-mm-dd>`.
   */
  readonly baseName?: string;
  /** ctr `--digests`: also register every manifest as `<base name>@<digest>`. */
  readonly digests?: boolean;
  /** ctr `--skip-digest-for-named` (needs `digests`): no digest name for manifests that have a name. */
  readonly skipDigestForNamed?: boolean;
  /** ctr `--all-platforms`: label (and so keep) every platform's content. */
  readonly allPlatforms?: boolean;
  /** ctr `--platform`: the platforms to keep; default: the host's (containerd's platforms.Default). */
  readonly platform?: MatchComparer;
  /** ctr `--discard-unpacked-layers`: manifests get no GC labels for their layers. */
  readonly discardLayers?: boolean;
  /** Labels to put on every image record. */
  readonly labels?: Record<string, string>;
  /** The date used for the `import-<date>` prefix (default: now). */
  readonly now?: Date;
}

export interface ImportResult extends ImportedIndex {
  /** The images to create or update, in containerd's order (index name first). */
  readonly images: Image[];
}

function defaultPrefix(now: Date): string {
  const pad = (n: number) => String(n).padStart(2, "0");
  return `import-${now.getFullYear()}-${pad(now.getMonth() + 1)}-${pad(now.getDate())}`;
}

function imageName(annotations: Record<string, string> | undefined, translate?: (ref: string) => string): string {
  const name = annotations?.[AnnotationImageName];
  if (name) return name;
  const ref = annotations?.[AnnotationRefName];
  if (ref) return translate ? translate(ref) : ref;
  return "";
}

/**
 * Imports an archive (see importIndex) and names its images as `ctr images import` does:
 * `io.containerd.image.name` is used as is; `org.opencontainers.image.ref.name` goes through the base-name
 * translator; `--digests` adds `<prefix>@<digest>` names; a manifest with no name at all (and no digest
 * naming) is named `<none>`.
 */
export async function importImages(
  ctx: Ctx,
  store: ContentStore,
  source: ByteSource,
  options: ImportOptions = {},
): Promise<ImportResult> {
  if (options.skipDigestForNamed && !options.digests) {
    throw new InvalidArgumentError("--skip-digest-for-named must be specified with --digests option");
  }
  const prefix = options.baseName || defaultPrefix(options.now ?? new Date());
  const translate = options.baseName ? filterRefPrefix(options.baseName) : addRefPrefix(prefix);
  const digestRef = options.digests ? digestTranslator(prefix) : undefined;
  const skipDigestRef = options.skipDigestForNamed ? (name: string) => name !== "" : undefined;

  const imported = await importIndex(ctx, store, source, options);
  const { index } = imported;
  const images: Image[] = [];
  const labels = options.labels ? { labels: { ...options.labels } } : {};
  if (options.indexName) images.push({ name: options.indexName, target: index, ...labels });

  const matcher = options.allPlatforms ? all : (options.platform ?? defaultMatcher());
  const base: Handler = async (c, desc) => {
    if (desc.digest !== index.digest) return children(c, store, desc);
    const idx = decodeIndex(await readBlob(c, store, desc), desc);
    for (const m of idx.manifests) {
      const name = imageName(m.annotations, translate);
      if (name !== "") images.push({ name, target: m, ...labels });
      if (skipDigestRef?.(name)) continue;
      if (digestRef !== undefined) {
        const ref = digestRef(m.digest);
        if (ref !== "") images.push({ name: ref, target: m, ...labels });
      }
      if (skipDigestRef === undefined && digestRef === undefined && name === "") {
        images.push({ name: "<none>", target: m, ...labels });
      }
    }
    return idx.manifests;
  };
  const handler = setChildrenLabels(
    store,
    filterPlatforms(base, matcher),
    options.discardLayers ? childGCLabelsFilterLayers : undefined,
  );
  // NotFound ("image might be filtered out") when no manifest matches the platform.
  await walkNotEmpty(ctx, handler, [index]);
  return { ...imported, images: dedupe(images) };
}

/** A later image with the same name replaces an earlier one (as containerd's Update-then-Create would). */
function dedupe(images: Image[]): Image[] {
  const byName = new Map<string, Image>();
  for (const img of images) byName.set(img.name, img);
  return [...byName.values()];
}

/**
 * Pushing an image from a content store (containerd's remotes.PushContent): blobs first, concurrently, each
 * skipped when the registry has it and mounted from another repository of the same registry when a
 * distribution-source label says where it came from; then manifests bottom-up; the root manifest (tagged) last,
 * so a reader never sees a manifest whose blobs are missing.
 */
import type { Ctx, Manager, Provider } from "@berth/content-store";
import { NotFoundError, isNotFound } from "@berth/errdefs";
import { type Descriptor, isIndexType, isManifestType } from "@berth/oci-spec";
import { children, readBlob } from "../image.js";
import type { Matcher } from "../platforms/platforms.js";
import type { Repository } from "./registry.js";

/** A blob was found on the registry, mounted, or uploaded (bytes = its size, or the bytes sent so far). */
export type PushProgress = (
  desc: Descriptor,
  state: "exists" | "mounted" | "uploading" | "uploaded",
  bytes: number,
) => void;

export interface PushOptions {
  /** Only these platforms' manifests (default: every manifest present in the store). */
  readonly platform?: Matcher;
  /** Upload in PATCH chunks of this many bytes (0: one monolithic PUT). */
  readonly chunkSize?: number;
  /** Blobs uploaded at once (default 3). */
  readonly concurrency?: number;
  readonly onProgress?: PushProgress;
}

const SOURCE_PREFIX = "containerd.io/distribution.source.";

/** Every descriptor under `root`, children before parents, each once. Missing indexed manifests are skipped. */
async function collect(
  ctx: Ctx,
  store: Provider & Manager,
  root: Descriptor,
  matcher: Matcher | undefined,
): Promise<Descriptor[]> {
  const seen = new Set<string>();
  const order: Descriptor[] = [];
  const visit = async (desc: Descriptor, optional: boolean): Promise<void> => {
    if (seen.has(desc.digest)) return;
    try {
      await store.info(ctx, desc.digest);
    } catch (err) {
      if (optional && isNotFound(err)) return;
      throw isNotFound(err) ? new NotFoundError(`content ${desc.digest} (${desc.mediaType}) is not in the store`) : err;
    }
    seen.add(desc.digest);
    let kids = await children(ctx, store, desc);
    if (isIndexType(desc.mediaType) && matcher) {
      kids = kids.filter((d) => d.platform === undefined || matcher.match(d.platform));
    }
    // an index may list manifests for platforms that were never pulled: push what is there
    for (const k of kids) await visit(k, isIndexType(desc.mediaType) && matcher === undefined);
    order.push(desc);
  };
  await visit(root, false);
  return order;
}

async function mountSource(ctx: Ctx, store: Manager, repo: Repository, desc: Descriptor): Promise<string | undefined> {
  const info = await store.info(ctx, desc.digest);
  const repos = info.labels[`${SOURCE_PREFIX}${repo.domain}`];
  if (!repos) return undefined;
  return repos.split(",").find((r) => r !== "" && r !== repo.path);
}

/**
 * Pushes `root` and everything under it to `repo`, tagging the root as `tag` (or by digest when tag is "").
 * `platform` filters an index's manifests; the index itself is pushed unchanged, so callers that want a
 * single-platform push pass the matching manifest as `root` (as ctr push --platform does).
 */
export async function pushImage(
  ctx: Ctx,
  store: Provider & Manager,
  repo: Repository,
  root: Descriptor,
  tag: string,
  options: PushOptions = {},
): Promise<void> {
  const all = await collect(ctx, store, root, options.platform);
  const blobs = all.filter((d) => !isManifestType(d.mediaType) && !isIndexType(d.mediaType));
  const manifests = all.filter((d) => isManifestType(d.mediaType) || isIndexType(d.mediaType));
  const signal = ctx.signal;
  const opts = signal ? { signal } : {};

  let next = 0;
  const worker = async () => {
    for (;;) {
      const desc = blobs[next++];
      if (desc === undefined) return;
      if (await repo.exists(desc, opts)) {
        options.onProgress?.(desc, "exists", desc.size);
        continue;
      }
      const from = await mountSource(ctx, store, repo, desc);
      const reader = await store.readerAt(ctx, desc);
      try {
        const r = await repo.pushBlob(desc, (offset, length) => reader.stream(offset, length), {
          ...opts,
          ...(from ? { mountFrom: from } : {}),
          ...(options.chunkSize ? { chunkSize: options.chunkSize } : {}),
          onProgress: (bytes) => options.onProgress?.(desc, "uploading", bytes),
        });
        options.onProgress?.(desc, r, desc.size);
      } finally {
        await reader.close();
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, options.concurrency ?? 3) }, worker));

  for (const desc of manifests) {
    const isRoot = desc.digest === root.digest;
    if (!isRoot && (await repo.exists(desc, opts))) {
      options.onProgress?.(desc, "exists", desc.size);
      continue;
    }
    const bytes = await readBlob(ctx, store, desc);
    await repo.pushManifest(desc, bytes, isRoot && tag !== "" ? tag : desc.digest, opts);
    options.onProgress?.(desc, "uploaded", desc.size);
  }
}

/**
 * Fetching an image into a content store (containerd's client.Fetch): resolve the reference, then walk the
 * graph concurrently (manifests as soon as they arrive, blobs a few at a time), keeping only the chosen
 * platform's manifest unless all platforms are wanted, and set the GC labels on every index and manifest.
 * The caller supplies the lease (ctx.lease) and registers the image; unpacking is separate (see unpack).
 */
import { setMaxListeners } from "node:events";
import type { ContentStore, Ctx } from "@berth/content-store";
import { type Descriptor, isIndexType, isManifestType } from "@berth/oci-spec";
import { type Handler, SkipDesc, filterPlatforms, limitManifests, setChildrenLabels } from "../handlers.js";
import { children } from "../image.js";
import { type MatchComparer, all, defaultMatcher } from "../platforms/platforms.js";
import { fetchBlob } from "../remotes/fetch.js";
import type { Repository } from "../remotes/registry.js";
import type { Resolver } from "../remotes/resolver.js";

export type PullState = "resolved" | "waiting" | "downloading" | "exists" | "done";

export interface PullProgressEvent {
  readonly desc: Descriptor;
  readonly state: PullState;
  /** Bytes in the store so far (resumed bytes included). */
  readonly offset: number;
}

export interface FetchImageOptions {
  /** The platform to fetch (default: the host's); ignored with allPlatforms. */
  readonly platform?: MatchComparer;
  readonly allPlatforms?: boolean;
  /** Blobs downloaded at once (containerd's max_concurrent_downloads, default 3). */
  readonly concurrency?: number;
  readonly onProgress?: (e: PullProgressEvent) => void;
  /** Called once a blob is in the store (fetched or already there), e.g. to start unpacking early. */
  readonly onBlob?: (desc: Descriptor) => void;
}

export interface FetchedImage {
  /** The normalised name (`docker.io/library/busybox:latest`). */
  readonly name: string;
  /** The resolved root: an index or a manifest. */
  readonly target: Descriptor;
  /** The image manifests that were fetched (one per platform kept). */
  readonly manifests: readonly Descriptor[];
  /** Blobs downloaded now / found in the store already. */
  readonly fetched: number;
  readonly existing: number;
}

/** A counting semaphore: at most `n` holders. */
function semaphore(n: number) {
  let free = n;
  const queue: Array<() => void> = [];
  return async <T>(fn: () => Promise<T>): Promise<T> => {
    if (free > 0) free--;
    else await new Promise<void>((r) => queue.push(r));
    try {
      return await fn();
    } finally {
      const next = queue.shift();
      if (next) next();
      else free++;
    }
  };
}

/**
 * Visits descriptors concurrently; the first failure aborts the rest (containerd's images.Dispatch) and is
 * thrown once every visit has ended, so no download is still writing when the caller goes on (as an errgroup's
 * Wait).
 */
async function dispatch(ctx: Ctx, handler: Handler, descs: readonly Descriptor[]): Promise<void> {
  const controller = new AbortController();
  // every request of the pull listens to this signal: many more than the default warning threshold of 10
  setMaxListeners(0, controller.signal);
  const parent = ctx.signal;
  const onAbort = () => controller.abort(parent?.reason);
  if (parent?.aborted) onAbort();
  else parent?.addEventListener("abort", onAbort, { once: true });
  const inner: Ctx = { ...ctx, signal: controller.signal };
  let failed = false;
  let first: unknown;
  const settleAll = async (visits: Array<Promise<void>>) => {
    for (const r of await Promise.allSettled(visits)) if (r.status === "rejected") throw r.reason;
  };
  const visit = async (desc: Descriptor): Promise<void> => {
    let r: Awaited<ReturnType<Handler>>;
    try {
      r = await handler(inner, desc);
    } catch (err) {
      if (!failed) {
        failed = true;
        first = err;
        controller.abort(err);
      }
      throw err;
    }
    if (r === SkipDesc || typeof r === "symbol" || r.length === 0) return;
    await settleAll(r.map(visit));
  };
  try {
    await settleAll(descs.map(visit));
  } catch (err) {
    throw failed ? first : err;
  } finally {
    parent?.removeEventListener("abort", onAbort);
  }
}

/** Fetches `desc` from `repo` into `store` and returns its children (for manifests and indexes). */
function fetchHandler(
  store: ContentStore,
  repo: Repository,
  options: FetchImageOptions,
  counts: { fetched: number; existing: number },
  manifests: Descriptor[],
): Handler {
  const limit = semaphore(Math.max(1, options.concurrency ?? 3));
  const progress = options.onProgress;
  return async (ctx, desc) => {
    const isTree = isManifestType(desc.mediaType) || isIndexType(desc.mediaType);
    progress?.({ desc, state: "waiting", offset: 0 });
    // manifests are small and gate everything below them: they do not wait for a download slot
    const run = () =>
      fetchBlob(ctx, store, repo, desc, {
        onProgress: (offset) => progress?.({ desc, state: "downloading", offset }),
      });
    const r = isTree ? await run() : await limit(run);
    if (r === "exists") counts.existing++;
    else counts.fetched++;
    progress?.({ desc, state: r === "exists" ? "exists" : "done", offset: desc.size });
    options.onBlob?.(desc);
    if (isManifestType(desc.mediaType)) manifests.push(desc);
    return isTree ? children(ctx, store, desc) : [];
  };
}

/**
 * Resolves `ref` and fetches the image into `store` (under ctx.lease), verifying every blob's digest and
 * setting the GC reference labels on indexes and manifests. Registers nothing.
 */
export async function fetchImage(
  ctx: Ctx,
  store: ContentStore,
  resolver: Resolver,
  ref: string,
  options: FetchImageOptions = {},
): Promise<FetchedImage> {
  const resolved = await resolver.resolve(ref, ctx.signal ? { signal: ctx.signal } : {});
  options.onProgress?.({ desc: resolved.desc, state: "resolved", offset: 0 });
  const matcher = options.allPlatforms ? all : (options.platform ?? defaultMatcher());
  const counts = { fetched: 0, existing: 0 };
  const manifests: Descriptor[] = [];
  let handler = fetchHandler(store, resolved.repository, options, counts, manifests);
  handler = filterPlatforms(handler, matcher);
  // one manifest per index unless all platforms are wanted (the best match, as containerd's Pull)
  if (!options.allPlatforms) handler = limitManifests(handler, matcher, 1);
  handler = setChildrenLabels(store, handler);
  await dispatch(ctx, handler, [resolved.desc]);
  return { name: resolved.name, target: resolved.desc, manifests, ...counts };
}

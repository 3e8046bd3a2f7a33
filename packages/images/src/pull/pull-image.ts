/**
 * A whole pull (containerd's client.Pull): under a lease, fetch the image with verification and GC labels,
 * unpack it for one platform while the fetch runs, then register it. The same code runs in the CLI (through
 * gRPC clients) and inside the daemon (over its own stores); only the dependencies differ.
 */
import type { ContentStore, Ctx } from "@berth/content-store";
import type { Applier } from "@berth/diff";
import type { Descriptor } from "@berth/oci-spec";
import type { Snapshotter } from "@berth/snapshotter";
import type { MatchComparer } from "../platforms/platforms.js";
import type { Resolver } from "../remotes/resolver.js";
import { type OverlappedUnpackResult, createOverlappedUnpacker } from "../unpack/overlapped.js";
import type { UnpackLeaseManager } from "../unpack/unpack.js";
import { type FetchImageOptions, type FetchedImage, fetchImage } from "./pull.js";

/** How long a pull's lease keeps its content when the pull never ends it (containerd: 24 h). */
export const PULL_LEASE_EXPIRY_MS = 24 * 3600 * 1000;
const LabelGCExpire = "containerd.io/gc.expire";

/** Creates the image, or points an existing one at the new target (as ctr's pull does). */
export interface ImageRegistrar {
  register(ctx: Ctx, name: string, target: Descriptor): Promise<void>;
}

export interface PullImageDeps {
  readonly content: ContentStore;
  readonly resolver: Resolver;
  readonly leases: UnpackLeaseManager;
  readonly images: ImageRegistrar;
}

export interface PullUnpackOptions {
  readonly snapshotter: Snapshotter;
  readonly applier: Applier;
  /** The snapshotter's name (`containerd.io/gc.ref.snapshot.<name>`). */
  readonly snapshotterName: string;
  /** The manifest to unpack. */
  readonly platform: MatchComparer;
}

export interface PullImageOptions extends Omit<FetchImageOptions, "onBlob"> {
  /** Unpack while fetching; omitted = fetch and register only. */
  readonly unpack?: PullUnpackOptions;
}

export interface PullResult extends FetchedImage {
  readonly unpacked?: OverlappedUnpackResult;
}

/**
 * Pulls `ref` into `deps.content` and registers it. The lease (24 h expiry) is deleted when the pull succeeds
 * and kept when it fails after downloads began, so the next pull resumes partial downloads and skips finished
 * blobs.
 */
export async function pullImage(
  ctx: Ctx,
  deps: PullImageDeps,
  ref: string,
  options: PullImageOptions = {},
): Promise<PullResult> {
  const expire = new Date(Date.now() + PULL_LEASE_EXPIRY_MS).toISOString().replace(/\.\d+Z$/, "Z");
  const { id } = await deps.leases.create(ctx, { labels: { [LabelGCExpire]: expire } });
  const lctx: Ctx = { ...ctx, lease: id };
  const { unpack: unpackOptions, ...fetchOptions } = options;
  const unpacker =
    unpackOptions === undefined
      ? undefined
      : createOverlappedUnpacker(
          lctx,
          { content: deps.content, snapshotter: unpackOptions.snapshotter, applier: unpackOptions.applier },
          { snapshotterName: unpackOptions.snapshotterName, platform: unpackOptions.platform },
        );
  let fetched: FetchedImage;
  let downloading = false;
  const onProgress = fetchOptions.onProgress;
  try {
    fetched = await fetchImage(lctx, deps.content, deps.resolver, ref, {
      ...fetchOptions,
      onProgress: (e) => {
        if (e.state === "downloading") downloading = true;
        onProgress?.(e);
      },
      ...(unpacker ? { onBlob: (desc: Descriptor) => unpacker.onBlob(desc) } : {}),
    });
  } catch (err) {
    // let a layer being applied finish or remove its active snapshot before the caller goes on
    await unpacker?.abort(err);
    // nothing to resume when no download began (unknown tag, bad credentials): no lease to leave behind
    if (!downloading) await deps.leases.delete({ namespace: ctx.namespace }, id).catch(() => {});
    throw err;
  }
  // unpacked before the image is registered: a registered image is a usable one
  const unpacked = await unpacker?.finish(fetched.target);
  await deps.images.register(lctx, fetched.name, fetched.target);
  await deps.leases.delete({ namespace: ctx.namespace }, id).catch(() => {});
  return unpacked === undefined ? fetched : { ...fetched, unpacked };
}

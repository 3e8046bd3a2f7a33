/**
 * Unpacking an image into a snapshotter (containerd's client Image.Unpack over rootfs.ApplyLayer): for each
 * layer, bottom first, the snapshot named by its chain ID is reused when it exists; otherwise an active
 * snapshot `extract-<unique> <chainID>` is prepared on the parent chain, the layer blob applied to its
 * mounts, the diffID checked against the image config, and the snapshot committed as the chain ID. A failure
 * removes the active snapshot, so nothing half-applied is ever committed or left behind. At the end the
 * config blob gets `containerd.io/gc.ref.snapshot.<snapshotter>=<chainID>` so the GC keeps the snapshots as
 * long as the image.
 *
 * Everything goes through interfaces (a Snapshotter, an Applier, a content provider/manager, a lease
 * manager), so the same code runs in-process and against a daemon through gRPC clients.
 */
import { randomBytes } from "node:crypto";
import type { Ctx, Manager, Provider } from "@berth/content-store";
import type { Applier, LayerDescriptor } from "@berth/diff";
import { FailedPreconditionError, InvalidArgumentError, isAlreadyExists, isNotFound } from "@berth/errdefs";
import type { Descriptor, Digest } from "@berth/oci-spec";
import type { Snapshotter } from "@berth/snapshotter";
import { chainIDs } from "../identity.js";
import { resolveManifest, rootFS } from "../image.js";
import { LabelUncompressed, isLayerType } from "../labels.js";
import type { MatchComparer } from "../platforms/platforms.js";

/** Label on an unpack's active snapshot naming the chain ID it becomes (containerd's `containerd.io/snapshot.ref`). */
export const LabelSnapshotRef = "containerd.io/snapshot.ref";
/** Prefix of the config blob label that keeps an unpacked image's snapshots (suffix: the snapshotter's name). */
export const LabelGCRefSnapshotPrefix = "containerd.io/gc.ref.snapshot.";
const LabelGCExpire = "containerd.io/gc.expire";

/** A layer to apply: its blob and its uncompressed digest from the image config. */
export interface UnpackLayer {
  readonly blob: Descriptor;
  readonly diffID: Digest;
}

/** What unpack needs of a lease manager (the Leases service client or the metadata store both fit). */
export interface UnpackLeaseManager {
  create(ctx: Ctx, options: { labels: Record<string, string> }): Promise<{ id: string }>;
  delete(ctx: Ctx, id: string): Promise<void>;
}

export interface UnpackDeps {
  readonly content: Provider & Pick<Manager, "update">;
  readonly snapshotter: Snapshotter;
  readonly applier: Applier;
  /** When the Ctx carries no lease, a temporary one (24 h expiry) is held for the unpack and deleted after. */
  readonly leases?: UnpackLeaseManager;
}

export interface LayerEvent {
  readonly index: number;
  readonly chainID: Digest;
  readonly diffID: Digest;
  /** False when the snapshot already existed. */
  readonly applied: boolean;
  readonly ms: number;
}

export interface UnpackOptions {
  /** The snapshotter's name (the `gc.ref.snapshot.<name>` label). */
  readonly snapshotterName: string;
  /** Which manifest of an index (default: the first, as containerd without a platform). */
  readonly platform?: MatchComparer;
  /** Labels for every snapshot unpack prepares and commits. */
  readonly snapshotLabels?: Readonly<Record<string, string>>;
  /** Called after each layer. */
  readonly onLayer?: (e: LayerEvent) => void;
}

export interface UnpackResult {
  /** The chain ID of the top layer: the image's rootfs snapshot. */
  readonly chainID: Digest;
  readonly manifest: Descriptor;
  readonly config: Descriptor;
  /** Layers actually applied (the others existed). */
  readonly applied: number;
}

/** containerd's uniquePart: time and a few random bytes, so concurrent unpacks never share a key. */
function uniquePart(): string {
  return `${process.hrtime.bigint() % 1_000_000_000n}-${randomBytes(3).toString("base64url")}`;
}

/** The active snapshot key of an unpack (containerd's `extract-%s %s`). */
export function unpackKey(chainID: string): string {
  return `extract-${uniquePart()} ${chainID}`;
}

/** Runs fn under the Ctx's lease, or under a temporary lease (deleted after) when there is none. */
export async function withLease<T>(
  ctx: Ctx,
  leases: UnpackLeaseManager | undefined,
  fn: (ctx: Ctx) => Promise<T>,
): Promise<T> {
  if (ctx.lease !== undefined || leases === undefined) return fn(ctx);
  const expire = new Date(Date.now() + 24 * 3600 * 1000).toISOString().replace(/\.\d+Z$/, "Z");
  const { id } = await leases.create(ctx, { labels: { [LabelGCExpire]: expire } });
  try {
    return await fn({ ...ctx, lease: id });
  } finally {
    await leases.delete({ namespace: ctx.namespace }, id).catch(() => {});
  }
}

/** The layers of an image for a platform, paired with their diffIDs (containerd's getLayers). */
export async function imageLayers(
  ctx: Ctx,
  provider: Provider,
  target: Descriptor,
  platform?: MatchComparer,
): Promise<{ manifest: Descriptor; config: Descriptor; layers: UnpackLayer[] }> {
  const { descriptor, manifest } = await resolveManifest(ctx, provider, target, platform);
  const diffIDs = await rootFS(ctx, provider, manifest.config);
  const blobs = manifest.layers;
  if (diffIDs.length !== blobs.length) {
    throw new InvalidArgumentError(
      `mismatched image rootfs and manifest layers: ${diffIDs.length} diffIDs, ${blobs.length} layers`,
    );
  }
  for (const b of blobs) {
    if (!isLayerType(b.mediaType)) throw new InvalidArgumentError(`${b.digest}: not a layer (${b.mediaType})`);
  }
  return {
    manifest: descriptor,
    config: manifest.config,
    layers: blobs.map((blob, i) => ({ blob, diffID: diffIDs[i]! })),
  };
}

/**
 * Applies one layer on top of the chain `parent` (its chain ID, "" for none) as snapshot `chainID`; returns
 * false when that snapshot already exists. The active snapshot is removed on any failure.
 */
export async function applyLayer(
  ctx: Ctx,
  deps: Pick<UnpackDeps, "snapshotter" | "applier">,
  layer: UnpackLayer,
  parent: string,
  chainID: string,
  labels: Readonly<Record<string, string>> = {},
): Promise<boolean> {
  const sn = deps.snapshotter;
  try {
    await sn.stat(ctx, chainID);
    return false;
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
  const snapshotLabels = { ...labels, [LabelSnapshotRef]: chainID };
  let key = "";
  let mounts: Awaited<ReturnType<Snapshotter["prepare"]>> | undefined;
  for (let attempt = 0; mounts === undefined; attempt++) {
    key = unpackKey(chainID);
    try {
      mounts = await sn.prepare(ctx, key, parent, { labels: snapshotLabels });
    } catch (err) {
      if (!isAlreadyExists(err) || attempt >= 3) throw err;
    }
  }
  let committed = false;
  try {
    const blob: LayerDescriptor = {
      mediaType: layer.blob.mediaType,
      digest: layer.blob.digest,
      size: layer.blob.size,
    };
    const applied = await deps.applier.apply(ctx, blob, mounts);
    if (applied.digest !== layer.diffID) {
      throw new FailedPreconditionError(
        `layer ${layer.blob.digest}: wrong diff id calculated on extraction: ${applied.digest}, the image config says ${layer.diffID}`,
      );
    }
    try {
      await sn.commit(ctx, chainID, key, { labels: snapshotLabels });
      committed = true;
    } catch (err) {
      // another unpack committed the same chain first: its snapshot is as good as ours
      if (!isAlreadyExists(err)) throw err;
      return false;
    }
    return true;
  } finally {
    if (!committed) await sn.remove({ namespace: ctx.namespace }, key).catch(() => {});
  }
}

/** Applies layers bottom first onto the chain and returns the top chain ID (containerd's ApplyLayers). */
export async function applyLayers(
  ctx: Ctx,
  deps: UnpackDeps,
  layers: readonly UnpackLayer[],
  options: Omit<UnpackOptions, "platform" | "snapshotterName"> = {},
): Promise<{ chainID: Digest; applied: number }> {
  if (layers.length === 0) throw new InvalidArgumentError("unpack: the image has no layers");
  const chain = chainIDs(layers.map((l) => l.diffID));
  let applied = 0;
  for (let i = 0; i < layers.length; i++) {
    const start = performance.now();
    const layer = layers[i]!;
    const chainID = chain[i]!;
    const did = await applyLayer(ctx, deps, layer, i === 0 ? "" : chain[i - 1]!, chainID, options.snapshotLabels);
    if (did) {
      applied++;
      // the uncompressed digest is now verified: record it on the blob (as containerd's Unpack does)
      await deps.content.update(ctx, { digest: layer.blob.digest, labels: { [LabelUncompressed]: layer.diffID } }, [
        `labels.${LabelUncompressed}`,
      ]);
    }
    options.onLayer?.({ index: i, chainID, diffID: layer.diffID, applied: did, ms: performance.now() - start });
  }
  return { chainID: chain[chain.length - 1]!, applied };
}

/** Unpacks the image `target` (index or manifest) into the snapshotter. */
export async function unpackImage(
  ctx: Ctx,
  deps: UnpackDeps,
  target: Descriptor,
  options: UnpackOptions,
): Promise<UnpackResult> {
  if (options.snapshotterName === "") throw new InvalidArgumentError("unpack: snapshotter name is required");
  return withLease(ctx, deps.leases, async (lctx) => {
    const { manifest, config, layers } = await imageLayers(lctx, deps.content, target, options.platform);
    const { chainID, applied } = await applyLayers(lctx, deps, layers, options);
    const label = `${LabelGCRefSnapshotPrefix}${options.snapshotterName}`;
    await deps.content.update(lctx, { digest: config.digest, labels: { [label]: chainID } }, [`labels.${label}`]);
    return { chainID, manifest, config, applied };
  });
}

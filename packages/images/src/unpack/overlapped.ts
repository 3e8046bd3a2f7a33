/**
 * An unpack that runs while a pull fetches: once the chosen platform's manifest and its config are in the
 * store, layer i is applied as soon as blob i has arrived and layer i-1 is applied. containerd unpacks after
 * the whole fetch; overlapping hides the download behind the apply (or the apply behind the download).
 */
import type { Descriptor } from "@berth/oci-spec";
import { isManifestType } from "@berth/oci-spec";
import { chainIDs } from "../identity.js";
import { decodeManifest, readBlob } from "../image.js";
import { LabelUncompressed } from "../labels.js";
import type { MatchComparer } from "../platforms/platforms.js";
import type { Ctx } from "@berth/content-store";
import { LabelGCRefSnapshotPrefix, type UnpackDeps, applyLayer, imageLayers, unpackImage } from "./unpack.js";

export interface OverlappedUnpackResult {
  readonly manifest: Descriptor;
  readonly chainID: string;
  /** Layers actually applied (the others existed). */
  readonly applied: number;
}

export interface OverlappedUnpacker {
  /** Tells the unpacker that a blob is in the store (fetched or found there). */
  onBlob(desc: Descriptor): void;
  /** Stops waiting for blobs; resolves once a layer being applied has finished or cleaned up. */
  abort(reason: unknown): Promise<void>;
  /** After the fetch: waits for the last layer (or unpacks `target` the usual way when nothing started). */
  finish(target: Descriptor): Promise<OverlappedUnpackResult>;
}

export interface OverlappedUnpackOptions {
  /** The snapshotter's name (the `gc.ref.snapshot.<name>` label on the config). */
  readonly snapshotterName: string;
  /** Which manifest to unpack. */
  readonly platform: MatchComparer;
}

/**
 * Creates an unpacker fed by a fetch's `onBlob`. `ctx` must carry the pull's lease: the snapshots it commits
 * join it until the image holds them through the config's GC label.
 */
export function createOverlappedUnpacker(
  ctx: Ctx,
  deps: Pick<UnpackDeps, "content" | "snapshotter" | "applier">,
  options: OverlappedUnpackOptions,
): OverlappedUnpacker {
  const store = deps.content;
  const present = new Map<string, () => void>();
  const arrived = new Set<string>();
  const waitFor = (digest: string) =>
    arrived.has(digest) ? Promise.resolve() : new Promise<void>((resolve) => present.set(digest, resolve));
  let aborted: unknown;
  let hasAborted = false;
  let rejectAbort: (e: unknown) => void = () => {};
  const aborting = new Promise<never>((_, reject) => {
    rejectAbort = reject;
  });
  aborting.catch(() => {});
  let started: Promise<OverlappedUnpackResult> | undefined;
  const label = `${LabelGCRefSnapshotPrefix}${options.snapshotterName}`;

  const run = async (manifest: Descriptor): Promise<OverlappedUnpackResult> => {
    // the manifest's config must be in before its layers can be listed
    const m = decodeManifest(await readBlob(ctx, store, manifest), manifest);
    await Promise.race([waitFor(m.config.digest), aborting]);
    const { layers, config } = await imageLayers(ctx, store, manifest);
    const chain = chainIDs(layers.map((l) => l.diffID));
    let applied = 0;
    for (let i = 0; i < layers.length; i++) {
      const layer = layers[i] as (typeof layers)[number];
      await Promise.race([waitFor(layer.blob.digest), aborting]);
      const did = await applyLayer(ctx, deps, layer, i === 0 ? "" : (chain[i - 1] as string), chain[i] as string);
      if (did) {
        applied++;
        // the uncompressed digest is now verified: record it on the blob (as containerd's unpack does)
        await store.update(ctx, { digest: layer.blob.digest, labels: { [LabelUncompressed]: layer.diffID } }, [
          `labels.${LabelUncompressed}`,
        ]);
      }
    }
    const top = chain[chain.length - 1] as string;
    await store.update(ctx, { digest: config.digest, labels: { [label]: top } }, [`labels.${label}`]);
    return { manifest, chainID: top, applied };
  };

  return {
    onBlob(desc) {
      arrived.add(desc.digest);
      present.get(desc.digest)?.();
      present.delete(desc.digest);
      if (
        started === undefined &&
        !hasAborted &&
        isManifestType(desc.mediaType) &&
        (desc.platform === undefined || options.platform.match(desc.platform))
      ) {
        started = run(desc);
        started.catch(() => {});
      }
    },
    async abort(reason) {
      hasAborted = true;
      aborted = reason;
      rejectAbort(reason);
      await started?.catch(() => {});
    },
    async finish(target) {
      if (hasAborted) throw aborted;
      if (started === undefined) {
        // nothing matched early (e.g. an index whose manifests carry no platform): unpack the usual way
        const r = await unpackImage(ctx, deps, target, {
          snapshotterName: options.snapshotterName,
          platform: options.platform,
        });
        return { manifest: r.manifest, chainID: r.chainID, applied: r.applied };
      }
      return started;
    },
  };
}

/**
 * The walking differ (containerd's diff/walking + diff/apply): Apply streams a layer blob from the content
 * store through applyLayer; Compare walks two mounted trees with diffDirs and writes the layer into the
 * content store.
 *
 * Apply takes a shortcut containerd's overlay applier also takes: a single overlay mount with an upper dir is
 * applied straight into the upper dir with overlay whiteouts (its lower dirs give implicit parents their
 * attributes), and a single writable bind mount straight into its source, so no mount(8) runs per layer.
 * Anything else is mounted on a temporary directory first.
 */
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import type { ContentStore } from "@berth/content-store";
import { InvalidArgumentError, NotImplementedError, isAlreadyExists, isNotFound } from "@berth/errdefs";
import { parseDigest } from "@berth/oci-spec";
import type { Mount } from "@berth/snapshotter";
import { type ApplyOptions as LayerApplyOptions, type Logger, applyLayer } from "../apply.js";
import { diffDirs } from "../diff.js";
import { applyLayerInWorker, workerApplyAvailable } from "../worker-apply.js";
import {
  type ApplyConfig,
  type CompareOptions,
  type Ctx,
  type Differ,
  LABEL_UNCOMPRESSED,
  type LayerDescriptor,
  MEDIA_TYPE_LAYER,
  MEDIA_TYPE_LAYER_GZIP,
} from "../differ.js";
import { readonlyMounts, withTempMount } from "./temp-mount.js";

export interface WalkingDifferOptions {
  /** Where blobs are read from and written to (the daemon passes the namespaced store). */
  readonly content: ContentStore;
  /** Parent of temporary mount points (containerd: `<root>/tmpmounts`); default: the OS temp dir. */
  readonly tempMountDir?: string;
  /**
   * Cap on a layer's uncompressed size: `max(floor, ratio × compressed size)` (defaults: 512 MiB, 512). Real
   * layers stay far below ratio 512 unless nearly all zeros; a decompression bomb fails with ResourceExhausted
   * once past the cap instead of filling the disk.
   */
  readonly maxExpansion?: { readonly floor: number; readonly ratio: number };
  /**
   * The file of a blob the content store holds locally, when it has one (berthd's local store: containerd's
   * `blobs/<alg>/<hex>` layout). The worker then reads it directly; visibility is still checked through the
   * store first.
   */
  readonly blobFile?: (digest: string) => string | undefined;
  /** Apply on a worker thread (default: when the worker file is found); false applies on the caller's thread. */
  readonly worker?: boolean;
  /** Blobs smaller than this (bytes) are applied on the caller's thread: the hand-off costs more (default 4 MiB). */
  readonly workerMinSize?: number;
  readonly log?: Logger;
}

/** The upper dir and lower dirs (top first) of an overlay mount's options; undefined without an upper dir. */
export function overlayDirs(options: readonly string[]): { upper: string; lowers: string[] } | undefined {
  let upper: string | undefined;
  let lowers: string[] = [];
  for (const o of options) {
    if (o.startsWith("upperdir=")) upper = o.slice("upperdir=".length);
    else if (o.startsWith("lowerdir=")) lowers = o.slice("lowerdir=".length).split(":");
  }
  return upper === undefined ? undefined : { upper, lowers };
}

/** Where a layer can be applied without mounting: the directory and the applyLayer options for it. */
function directTarget(mounts: readonly Mount[]): { dir: string; options: LayerApplyOptions } | undefined {
  if (mounts.length !== 1) return undefined;
  const m = mounts[0]!;
  if (m.type === "overlay") {
    const dirs = overlayDirs(m.options);
    if (dirs === undefined) return undefined;
    return {
      dir: dirs.upper,
      options: {
        whiteouts: "overlay",
        overlayUserXattr: m.options.includes("userxattr"),
        ...(dirs.lowers.length > 0 ? { parents: dirs.lowers } : {}),
      },
    };
  }
  if (m.type === "bind" && !m.options.includes("ro") && (m.target ?? "") === "") {
    return { dir: m.source, options: {} };
  }
  return undefined;
}

function uniqueRef(): string {
  return `${Date.now()}-${randomBytes(6).toString("hex")}`;
}

export function createWalkingDiffer(options: WalkingDifferOptions): Differ {
  const store = options.content;
  const tempRoot = options.tempMountDir ?? path.join(os.tmpdir(), "berth-tmpmounts");
  const expansion = options.maxExpansion ?? { floor: 512 << 20, ratio: 512 };
  const useWorker = options.worker ?? workerApplyAvailable();

  return {
    async apply(ctx: Ctx, desc: LayerDescriptor, mounts: readonly Mount[], _config?: ApplyConfig) {
      parseDigest(desc.digest);
      if (mounts.length === 0) throw new InvalidArgumentError("apply: no mounts given");
      const start = performance.now();
      const ra = await store.readerAt(ctx, { digest: desc.digest, size: desc.size, mediaType: desc.mediaType });
      try {
        const base: LayerApplyOptions = {
          mediaType: desc.mediaType,
          maxSize: Math.max(expansion.floor, expansion.ratio * ra.size),
          ...(ctx.signal ? { signal: ctx.signal } : {}),
          ...(options.log ? { log: options.log } : {}),
        };
        const direct = directTarget(mounts);
        const worker = useWorker && ra.size >= (options.workerMinSize ?? 4 << 20);
        const file = worker ? options.blobFile?.(desc.digest) : undefined;
        const run = (root: string, opts: LayerApplyOptions) =>
          file !== undefined && existsSync(file)
            ? applyLayerInWorker(root, { file }, opts)
            : worker
              ? applyLayerInWorker(root, ra.stream(), opts)
              : applyLayer(root, ra.stream(), opts);
        const result = direct
          ? await run(direct.dir, { ...base, ...direct.options })
          : await withTempMount(tempRoot, mounts, (root) => run(root, base));
        options.log?.debug(
          { digest: desc.digest, ms: Math.round(performance.now() - start), direct: direct !== undefined },
          "diff applied",
        );
        return { mediaType: MEDIA_TYPE_LAYER, digest: result.diffID, size: result.size };
      } finally {
        await ra.close();
      }
    },

    async compare(ctx: Ctx, lower: readonly Mount[], upper: readonly Mount[], opts: CompareOptions = {}) {
      const mediaType = opts.mediaType || MEDIA_TYPE_LAYER_GZIP;
      if (mediaType !== MEDIA_TYPE_LAYER && mediaType !== MEDIA_TYPE_LAYER_GZIP) {
        throw new NotImplementedError(`unsupported diff media type: ${mediaType}`);
      }
      const compressed = mediaType === MEDIA_TYPE_LAYER_GZIP;
      return withTempMount(tempRoot, readonlyMounts(lower), (lowerRoot) =>
        withTempMount(tempRoot, readonlyMounts(upper), async (upperRoot) => {
          const newRef = !opts.reference;
          const ref = opts.reference || uniqueRef();
          const w = await store.writer(ctx, { ref, desc: { mediaType } });
          let committed = false;
          try {
            if (!newRef) await w.truncate(0);
            const d = diffDirs(lowerRoot, upperRoot, {
              compression: compressed ? "gzip" : "none",
              ...(ctx.signal ? { signal: ctx.signal } : {}),
            });
            for await (const chunk of d.stream) await w.write(chunk);
            const r = await d.result;
            const labels: Record<string, string> = { ...(opts.labels ?? {}) };
            if (compressed) labels[LABEL_UNCOMPRESSED] = r.diffID;
            try {
              await w.commit(0, r.digest, { labels });
            } catch (err) {
              if (!isAlreadyExists(err)) throw err;
            }
            committed = true;
            const info = await store.info(ctx, r.digest);
            if (compressed && info.labels[LABEL_UNCOMPRESSED] === undefined) {
              await store.update(ctx, { digest: r.digest, labels: { [LABEL_UNCOMPRESSED]: r.diffID } }, [
                `labels.${LABEL_UNCOMPRESSED}`,
              ]);
            }
            return { mediaType, digest: info.digest, size: info.size };
          } finally {
            if (!committed) {
              await w.close().catch(() => {});
              if (newRef) {
                await store.abort(ctx, ref).catch((err: unknown) => {
                  if (!isNotFound(err)) options.log?.warn({ ref, err: String(err) }, "diff upload not removed");
                });
              }
            }
          }
        }),
      );
    },
  };
}

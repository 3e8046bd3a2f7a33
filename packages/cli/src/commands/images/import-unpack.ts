/**
 * The unpack step of `berth images import` (as ctr's: after the images are registered, each one is unpacked
 * for the platform into the snapshotter, client-side, through the daemon's Diff and Snapshots services, under
 * the import's lease).
 */
import type { ContentStore } from "@berth/content-store";
import type { Descriptor } from "@berth/oci-spec";
import type { CommandContext } from "../../context.js";

export interface UnpackedImage {
  readonly name: string;
  readonly snapshotter: string;
  /** The top snapshot: the image's rootfs. */
  readonly chainID: string;
  /** Layers applied now (the others were already unpacked). */
  readonly applied: number;
}

export interface UnpackImportedOptions {
  readonly snapshotter: string;
  /** A platform specifier; default: the host's (ctr's platforms.Default()). */
  readonly platform?: string;
  /** Print ctr's `unpacking NAME (DIGEST)...done` lines on stdout. */
  readonly print: boolean;
}

export async function unpackImported(
  ctx: CommandContext,
  lease: string,
  store: ContentStore,
  images: ReadonlyArray<{ name: string; target: Descriptor }>,
  options: UnpackImportedOptions,
): Promise<UnpackedImage[]> {
  const [{ unpackImage }, platforms, { createDiffClient }, { createSnapshotterClient }] = await Promise.all([
    import("@berth/images/unpack"),
    import("@berth/images/platforms"),
    import("@berth/diff/proxy"),
    import("@berth/snapshotter/proxy"),
  ]);
  const platform = options.platform ? platforms.only(platforms.parse(options.platform)) : platforms.defaultMatcher();
  const deps = {
    content: store,
    snapshotter: createSnapshotterClient(ctx.transport(), options.snapshotter),
    applier: createDiffClient(ctx.transport()),
  };
  const out: UnpackedImage[] = [];
  for (const img of images) {
    if (options.print) ctx.out.stdout(`unpacking ${img.name} (${img.target.digest})...`);
    const r = await unpackImage({ namespace: ctx.options.namespace, lease }, deps, img.target, {
      snapshotterName: options.snapshotter,
      platform,
    });
    if (options.print) ctx.out.stdout("done\n");
    out.push({ name: img.name, snapshotter: options.snapshotter, chainID: r.chainID, applied: r.applied });
  }
  return out;
}

/**
 * `berth images push` (ctr images push): uploads an image from the content store to a registry — blobs the
 * registry lacks (mounted from another repository when a distribution-source label allows), then manifests,
 * the tagged root last.
 */
import type { Descriptor } from "@berth/oci-spec";
import { Command } from "commander";
import type { CommandContext } from "../../context.js";
import { CliError } from "../../errors.js";
import type { RunCommand } from "../../program.js";
import { formatBytes } from "../content/progress.js";
import { type RegistryFlags, addRegistryOptions, daemonContentStore, libCtx, resolverFor } from "./pull.js";

interface PushFlags extends RegistryFlags {
  platform?: string;
  chunkSize?: string;
  maxConcurrentUploads?: string;
  progress: boolean;
}

async function localTarget(ctx: CommandContext, name: string): Promise<Descriptor> {
  const { Images } = await import("@berth/api/services/images/v1");
  const { image } = await ctx.client(Images).get({ name }, ctx.callOptions());
  const t = image?.target;
  if (t === undefined) throw new CliError(`image ${JSON.stringify(name)} has no target`);
  return {
    mediaType: t.mediaType,
    digest: t.digest as Descriptor["digest"],
    size: Number(t.size),
    ...(Object.keys(t.annotations).length > 0 ? { annotations: { ...t.annotations } } : {}),
  };
}

export function pushCommand(run: RunCommand): Command {
  return addRegistryOptions(
    new Command("push")
      .description("push an image to a registry")
      .argument("<remote>", "the reference to push to")
      .argument("[local]", "the local image name (default: the remote reference)"),
  )
    .option("--platform <platform>", "push only this platform's manifest")
    .option("--chunk-size <bytes>", "upload blobs in chunks of this size (default: one request per blob)")
    .option("--max-concurrent-uploads <n>", "blobs uploaded at once", "3")
    .option("--no-progress", "never show progress")
    .action(async (remote: string, local: string | undefined, opts: PushFlags, command: Command) =>
      run(command, async (ctx) => {
        const remotes = await import("@berth/images/remotes");
        const platforms = await import("@berth/images/platforms");
        const { decodeIndex, readBlob } = await import("@berth/images");
        const { isIndexType } = await import("@berth/oci-spec");
        const ref = remotes.parseReference(remote);
        const resolver = await resolverFor(opts);
        const store = await daemonContentStore(ctx);
        const c = libCtx(ctx);
        let root = await localTarget(ctx, local ?? remote);
        const matcher = opts.platform ? platforms.only(platforms.parse(opts.platform)) : undefined;
        if (matcher && isIndexType(root.mediaType)) {
          const idx = decodeIndex(await readBlob(c, store, root), root);
          const m = idx.manifests.find((d) => d.platform !== undefined && matcher.match(d.platform));
          if (m === undefined) throw new CliError(`no manifest for platform ${opts.platform} in ${root.digest}`);
          root = m;
        }
        const chunkSize = opts.chunkSize ? Number(opts.chunkSize) : 0;
        if (!Number.isInteger(chunkSize) || chunkSize < 0) throw new CliError("--chunk-size: not a byte count");
        const repo = await resolver.repository(ref);
        const tty = opts.progress && !ctx.options.json ? ctx.out.stderrTty : undefined;
        let uploaded = 0;
        let blobs = 0;
        let mounted = 0;
        const started = performance.now();
        await remotes.pushImage(c, store, repo, root, ref.tag ?? "", {
          chunkSize,
          concurrency: Number(opts.maxConcurrentUploads ?? 3) || 3,
          onProgress: (desc, state) => {
            // the root is always PUT (that sets the tag): count only what the registry lacked
            if (desc.digest === root.digest) return;
            if (state === "mounted") mounted++;
            if (state === "uploaded") {
              blobs++;
              uploaded += desc.size;
            }
            tty?.write(`\rpushing: ${blobs} uploaded (${formatBytes(uploaded)}), ${mounted} mounted`);
          },
        });
        if (tty) tty.write("\n");
        const name = `${ref.domain}/${ref.path}${ref.tag ? `:${ref.tag}` : ""}`;
        const seconds = ((performance.now() - started) / 1000).toFixed(1);
        ctx.out.stdout(
          `${name}: pushed ${root.digest} (${blobs} uploaded, ${formatBytes(uploaded)}, ${mounted} mounted, ${seconds}s)\n`,
        );
      }),
    );
}

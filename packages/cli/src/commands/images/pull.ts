/**
 * `berth images pull` (ctr images pull): as in ctr the client talks to the registry, writes blobs through the
 * Content service under a lease, registers the image and unpacks it for the platform. The registry options
 * shared with fetch and push live here too.
 */
import type { Image } from "@berth/api/services/images/v1";
import type { ContentStore, Ctx } from "@berth/content-store";
import { isNotFound } from "@berth/errdefs";
import { fromConnectError } from "@berth/errdefs/connect";
import type { Descriptor } from "@berth/oci-spec";
import type { FetchedImage, PullProgressEvent } from "@berth/images/pull";
import type { Resolver } from "@berth/images/remotes";
import { Command, Option } from "commander";
import type { CommandContext } from "../../context.js";
import { CliError } from "../../errors.js";
import type { RunCommand } from "../../program.js";
import { formatBytes } from "../content/progress.js";
import { expireLabel, leasesClient, randomLeaseId } from "../leases/index.js";

export interface RegistryFlags {
  plainHttp?: boolean;
  skipVerify?: boolean;
  user?: string;
  hostsDir?: string;
}

/** Adds ctr's registry flags (`--plain-http`, `--skip-verify`, `--user`, `--hosts-dir`). */
export function addRegistryOptions(cmd: Command): Command {
  return cmd
    .option("--plain-http", "talk to the registry over plain HTTP")
    .option("-k, --skip-verify", "skip TLS certificate verification of the registry")
    .option("-u, --user <user[:password]>", "registry credentials (default: from the docker config.json)")
    .option("--hosts-dir <dir>", "directory of <host>/hosts.toml registry configuration (containerd's certs.d)");
}

/** A resolver for the flags: `--user` credentials, else those of the docker config.json. */
export async function resolverFor(flags: RegistryFlags): Promise<Resolver> {
  const remotes = await import("@berth/images/remotes");
  let credentials = remotes.dockerConfigCredentials();
  if (flags.user !== undefined) {
    if (!flags.user.includes(":")) throw new CliError("--user: give the password as user:password");
    credentials = remotes.staticCredentials(flags.user);
  }
  return remotes.createResolver({
    credentials,
    ...(flags.plainHttp ? { plainHttp: true } : {}),
    ...(flags.skipVerify ? { skipVerify: true } : {}),
    ...(flags.hostsDir ? { hostsDir: flags.hostsDir } : {}),
  });
}

/** The daemon's Content service as a store, with the fast direct Content.Write path for writers. */
export async function daemonContentStore(ctx: CommandContext): Promise<ContentStore> {
  const { createContentClient } = await import("@berth/content-store/proxy");
  const { Content } = await import("@berth/api/services/content/v1");
  const { withDirectWriters } = await import("./direct-writer.js");
  return withDirectWriters(createContentClient(ctx.transport()), ctx.client(Content), () => ctx.callOptions());
}

export const libCtx = (ctx: CommandContext, lease?: string): Ctx =>
  lease === undefined ? { namespace: ctx.options.namespace } : { namespace: ctx.options.namespace, lease };

/** Creates the image, or moves it to the new target when it exists (as ctr's pull does). */
export async function registerImage(ctx: CommandContext, name: string, target: Descriptor): Promise<Image | undefined> {
  const { Images } = await import("@berth/api/services/images/v1");
  const client = ctx.client(Images);
  const image = {
    name,
    labels: {},
    target: {
      mediaType: target.mediaType,
      digest: target.digest,
      size: BigInt(target.size),
      annotations: { ...(target.annotations ?? {}) },
    },
  };
  try {
    return (await client.update({ image, updateMask: { paths: ["target"] } }, ctx.callOptions())).image;
  } catch (err) {
    if (!isNotFound(fromConnectError(err))) throw err;
    return (await client.create({ image }, ctx.callOptions())).image;
  }
}

/** A lease for the pull (24 h expiry, as ctr's); kept on failure so that the next pull resumes. */
export async function withPullLease<T>(ctx: CommandContext, fn: (lease: string) => Promise<T>): Promise<T> {
  const leases = await leasesClient(ctx);
  const { lease } = await leases.create(
    { id: randomLeaseId(), labels: expireLabel(24 * 3600 * 1000) },
    ctx.callOptions(),
  );
  const id = lease?.id ?? "";
  const result = await fn(id);
  await leases.delete({ id }, ctx.callOptions()).catch(() => {});
  return result;
}

/** Progress on a terminal: a bar per blob being downloaded plus a total with speed (cli-progress). */
export async function pullProgress(
  tty: NodeJS.WriteStream | undefined,
): Promise<{ onProgress: (e: PullProgressEvent) => void; stop(): void; bytes(): number }> {
  let downloaded = 0;
  const offsets = new Map<string, number>();
  const account = (e: PullProgressEvent) => {
    const prev = offsets.get(e.desc.digest);
    // the first offset of a download is where it starts (a resumed ingest's size): not downloaded now
    if (e.state === "downloading" && prev !== undefined && e.offset > prev) downloaded += e.offset - prev;
    if (e.state === "downloading" || e.state === "exists") offsets.set(e.desc.digest, e.offset);
  };
  if (tty === undefined) return { onProgress: account, stop() {}, bytes: () => downloaded };
  const mod = await import("cli-progress");
  const { MultiBar, Presets } = (mod as unknown as { default?: typeof mod }).default ?? mod;
  const multi = new MultiBar(
    {
      stream: tty,
      format: "{name} [{bar}] {percentage}% | {done} / {size} | {speed}",
      hideCursor: true,
      fps: 10,
      barsize: 24,
      clearOnComplete: false,
      noTTYOutput: false,
    },
    Presets.shades_classic,
  );
  const started = performance.now();
  let totalSize = 0;
  const total = multi.create(1, 0, { name: "total          ", done: "0 B", size: "", speed: "" });
  const bars = new Map<string, ReturnType<typeof multi.create>>();
  const payload = () => {
    const seconds = (performance.now() - started) / 1000;
    return {
      name: "total          ",
      done: formatBytes(downloaded),
      size: formatBytes(totalSize),
      speed: `${formatBytes(Math.round(seconds > 0 ? downloaded / seconds : 0))}/s`,
    };
  };
  return {
    onProgress(e) {
      account(e);
      const key = e.desc.digest;
      let bar = bars.get(key);
      if (bar === undefined && e.state === "waiting") {
        totalSize += e.desc.size;
        total.setTotal(Math.max(1, totalSize));
        bar = multi.create(Math.max(1, e.desc.size), 0, {
          name: `${e.desc.digest.slice(7, 19)}   `,
          done: "0 B",
          size: formatBytes(e.desc.size),
          speed: "waiting",
        });
        bars.set(key, bar);
      }
      if (bar !== undefined) {
        const state = e.state === "exists" ? "exists" : e.state === "done" ? "done" : e.state;
        bar.update(e.offset, { done: formatBytes(e.offset), speed: state });
      }
      total.update(
        Math.min(
          totalSize,
          [...offsets.values()].reduce((a, b) => a + b, 0),
        ),
        payload(),
      );
    },
    stop() {
      multi.stop();
    },
    bytes: () => downloaded,
  };
}

export interface PullFlags extends RegistryFlags {
  platform: string[];
  allPlatforms?: boolean;
  progress: boolean;
  unpack?: boolean;
  snapshotter?: string;
  maxConcurrentDownloads?: string;
}

/** The common body of pull and fetch: resolve, fetch under a lease, register. */
export async function pullImage(
  ctx: CommandContext,
  ref: string,
  opts: PullFlags,
  unpacker?: (lease: string, store: ContentStore) => Promise<Unpacker>,
): Promise<void> {
  const { fetchImage } = await import("@berth/images/pull");
  const platforms = await import("@berth/images/platforms");
  const resolver = await resolverFor(opts);
  const store = await daemonContentStore(ctx);
  const tty = opts.progress && !ctx.options.json ? ctx.out.stderrTty : undefined;
  const progress = await pullProgress(tty);
  const started = performance.now();
  const concurrency = opts.maxConcurrentDownloads ? Number(opts.maxConcurrentDownloads) : 3;
  if (!Number.isInteger(concurrency) || concurrency < 1)
    throw new CliError("--max-concurrent-downloads: not a positive integer");
  const platform =
    opts.platform.length > 0 ? platforms.ordered(...opts.platform.map((p) => platforms.parse(p))) : undefined;
  await withPullLease(ctx, async (lease) => {
    let fetched: FetchedImage;
    const unpack = await unpacker?.(lease, store);
    try {
      fetched = await fetchImage(libCtx(ctx, lease), store, resolver, ref, {
        concurrency,
        onProgress: progress.onProgress,
        ...(unpack ? { onBlob: unpack.onBlob } : {}),
        ...(opts.allPlatforms ? { allPlatforms: true } : {}),
        ...(platform ? { platform } : {}),
      });
    } catch (err) {
      // let a layer being applied finish or clean up its active snapshot before the process ends
      await unpack?.abort(err);
      throw err;
    } finally {
      progress.stop();
    }
    // unpacked before the image is registered: a registered image is a usable one
    const unpacked = await unpack?.finish(fetched);
    await registerImage(ctx, fetched.name, fetched.target);
    const seconds = (performance.now() - started) / 1000;
    if (ctx.options.json) {
      const { writeJson } = await import("../../output.js");
      writeJson(ctx.out, {
        name: fetched.name,
        digest: fetched.target.digest,
        mediaType: fetched.target.mediaType,
        fetched: fetched.fetched,
        existing: fetched.existing,
        bytes: progress.bytes(),
        ...(unpacked
          ? { unpacked: { manifest: unpacked.manifest.digest, chainID: unpacked.chainID, applied: unpacked.applied } }
          : {}),
      });
    } else {
      ctx.out.stdout(
        `${fetched.name}: resolved ${fetched.target.digest}\n` +
          `fetched ${fetched.fetched} blobs (${formatBytes(progress.bytes())}), ${fetched.existing} already present, ${seconds.toFixed(1)}s\n`,
      );
    }
    if (unpacked && !ctx.options.json) {
      ctx.out.stdout(
        `unpacked ${unpacked.manifest.digest} into ${opts.snapshotter ?? "overlayfs"}: ${unpacked.chainID} (${unpacked.applied} layers applied)\n`,
      );
    }
  });
}

/** An unpack that runs while the pull fetches: each layer is applied as soon as it and those below it are in. */
export interface Unpacker {
  onBlob(desc: Descriptor): void;
  /** Stops waiting for blobs; resolves once a layer being applied has finished or cleaned up. */
  abort(reason: unknown): Promise<void>;
  finish(fetched: FetchedImage): Promise<{ manifest: Descriptor; chainID: string; applied: number }>;
}

/**
 * Starts unpacking the pulled image's manifest for `platform` as soon as its manifest and config are in the
 * store, then applies layer i once blob i has arrived and layer i-1 is applied (containerd unpacks after the
 * whole fetch; overlapping hides the download behind the apply).
 */
export async function overlappedUnpacker(
  ctx: CommandContext,
  lease: string,
  store: ContentStore,
  snapshotterName: string,
  platform: import("@berth/images/platforms").MatchComparer,
): Promise<Unpacker> {
  const unpackLib = await import("@berth/images/unpack");
  const { chainIDs, decodeManifest, readBlob } = await import("@berth/images");
  const { createDiffClient } = await import("@berth/diff/proxy");
  const { createSnapshotterClient } = await import("@berth/snapshotter/proxy");
  const { isManifestType } = await import("@berth/oci-spec");
  const deps = {
    content: store,
    snapshotter: createSnapshotterClient(ctx.transport(), snapshotterName),
    applier: createDiffClient(ctx.transport()),
  };
  const c = libCtx(ctx, lease);
  const present = new Map<string, () => void>();
  const arrived = new Set<string>();
  const waitFor = (digest: string) =>
    arrived.has(digest) ? Promise.resolve() : new Promise<void>((resolve) => present.set(digest, resolve));
  let aborted: unknown;
  let abortWaiters: Array<(e: unknown) => void> = [];
  const aborting = new Promise<never>((_, reject) => abortWaiters.push(reject));
  aborting.catch(() => {});
  let started: Promise<{ manifest: Descriptor; chainID: string; applied: number }> | undefined;
  const run = async (manifest: Descriptor) => {
    // the manifest's config must be in before its layers can be listed
    const m = decodeManifest(await readBlob(c, store, manifest), manifest);
    await Promise.race([waitFor(m.config.digest), aborting]);
    const { layers, config } = await unpackLib.imageLayers(c, store, manifest);
    const chain = chainIDs(layers.map((l) => l.diffID));
    let applied = 0;
    for (let i = 0; i < layers.length; i++) {
      const layer = layers[i] as (typeof layers)[number];
      await Promise.race([waitFor(layer.blob.digest), aborting]);
      const did = await unpackLib.applyLayer(
        c,
        deps,
        layer,
        i === 0 ? "" : (chain[i - 1] as string),
        chain[i] as string,
      );
      if (did) {
        applied++;
        await store.update(c, { digest: layer.blob.digest, labels: { "containerd.io/uncompressed": layer.diffID } }, [
          "labels.containerd.io/uncompressed",
        ]);
      }
    }
    const top = chain[chain.length - 1] as string;
    const label = `${unpackLib.LabelGCRefSnapshotPrefix}${snapshotterName}`;
    await store.update(c, { digest: config.digest, labels: { [label]: top } }, [`labels.${label}`]);
    return { manifest, chainID: top, applied };
  };
  return {
    onBlob(desc) {
      arrived.add(desc.digest);
      present.get(desc.digest)?.();
      present.delete(desc.digest);
      if (
        started === undefined &&
        isManifestType(desc.mediaType) &&
        (desc.platform === undefined || platform.match(desc.platform))
      ) {
        started = run(desc);
        started.catch(() => {});
      }
    },
    async abort(reason) {
      aborted = reason;
      for (const w of abortWaiters) w(reason);
      abortWaiters = [];
      await started?.catch(() => {});
    },
    async finish(fetched) {
      if (aborted !== undefined) throw aborted;
      if (started === undefined) {
        // nothing matched early (e.g. manifest had no platform in an index): unpack the usual way
        const r = await unpackLib.unpackImage(c, deps, fetched.target, { snapshotterName, platform });
        return { manifest: r.manifest, chainID: r.chainID, applied: r.applied };
      }
      return started;
    },
  };
}

export function pullCommand(run: RunCommand): Command {
  return addRegistryOptions(
    new Command("pull")
      .description("pull an image from a registry and unpack it")
      .argument("<ref>", "image reference (docker.io/library/busybox:latest, 127.0.0.1:5000/app:v1)"),
  )
    .addOption(
      new Option("--platform <platform>", "pull content for this platform (repeatable; default: the host's)")
        .argParser((v: string, prev: string[]) => [...prev, v])
        .default([]),
    )
    .option("--all-platforms", "pull content for all platforms")
    .option("--max-concurrent-downloads <n>", "blobs downloaded at once", "3")
    .option("--snapshotter <name>", "snapshotter to unpack into", "overlayfs")
    .option("--no-unpack", "fetch and register only")
    .option("--no-progress", "never show progress")
    .action(async (ref: string, opts: PullFlags, command: Command) =>
      run(command, async (ctx) => {
        const platforms = await import("@berth/images/platforms");
        const platform =
          opts.platform.length > 0
            ? platforms.only(platforms.parse(opts.platform[0] as string))
            : platforms.defaultMatcher();
        await pullImage(
          ctx,
          ref,
          opts,
          opts.unpack === false
            ? undefined
            : (lease, store) => overlappedUnpacker(ctx, lease, store, opts.snapshotter ?? "overlayfs", platform),
        );
      }),
    );
}

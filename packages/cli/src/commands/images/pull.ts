/**
 * `berth images pull` (ctr images pull). Against berthd the daemon pulls (its Pull service, see daemon-pull.ts),
 * as containerd 2.x's Transfer service does; against containerd, or with `--local`, the client talks to the
 * registry, writes blobs through the Content service under a lease, unpacks for the platform and registers the
 * image, as ctr does. The registry options shared with fetch and push live here too.
 */
import type { Image } from "@berth/api/services/images/v1";
import type { ContentStore, Ctx } from "@berth/content-store";
import { isNotFound } from "@berth/errdefs";
import { fromConnectError } from "@berth/errdefs/connect";
import type { Descriptor } from "@berth/oci-spec";
import type { PullProgressEvent } from "@berth/images/pull";
import type { Resolver } from "@berth/images/remotes";
import { Command, Option } from "commander";
import type { CommandContext } from "../../context.js";
import { CliError } from "../../errors.js";
import type { RunCommand } from "../../program.js";
import { formatBytes } from "../content/progress.js";
import { leasesClient, randomLeaseId } from "../leases/index.js";

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
  local?: boolean;
}

/** What a pull prints: ctr-like text, or one JSON object with `--json`. */
interface PullReport {
  readonly name: string;
  readonly target: { readonly mediaType: string; readonly digest: string };
  readonly fetched: number;
  readonly existing: number;
  readonly unpacked?: { readonly manifest: string; readonly chainID: string; readonly applied: number };
}

async function printPull(
  ctx: CommandContext,
  r: PullReport,
  bytes: number,
  seconds: number,
  snapshotter: string,
): Promise<void> {
  if (ctx.options.json) {
    const { writeJson } = await import("../../output.js");
    writeJson(ctx.out, {
      name: r.name,
      digest: r.target.digest,
      mediaType: r.target.mediaType,
      fetched: r.fetched,
      existing: r.existing,
      bytes,
      ...(r.unpacked
        ? { unpacked: { manifest: r.unpacked.manifest, chainID: r.unpacked.chainID, applied: r.unpacked.applied } }
        : {}),
    });
    return;
  }
  ctx.out.stdout(
    `${r.name}: resolved ${r.target.digest}\n` +
      `fetched ${r.fetched} blobs (${formatBytes(bytes)}), ${r.existing} already present, ${seconds.toFixed(1)}s\n`,
  );
  if (r.unpacked) {
    ctx.out.stdout(
      `unpacked ${r.unpacked.manifest} into ${snapshotter}: ${r.unpacked.chainID} (${r.unpacked.applied} layers applied)\n`,
    );
  }
}

/**
 * The client-side pull (ctr's; what runs against containerd, and with `--local`): this process talks to the
 * registry, writes blobs through Content.Write under a lease, unpacks through Diff + Snapshots while the fetch
 * runs (when `unpack`), and registers the image, all through @berth/images' pullImage over gRPC clients.
 */
export async function pullImage(ctx: CommandContext, ref: string, opts: PullFlags, unpack = false): Promise<void> {
  const [{ pullImage: pull }, platforms] = await Promise.all([
    import("@berth/images/pull"),
    import("@berth/images/platforms"),
  ]);
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
  const snapshotterName = opts.snapshotter ?? "overlayfs";
  let unpackOptions: import("@berth/images/pull").PullUnpackOptions | undefined;
  if (unpack) {
    const { createDiffClient } = await import("@berth/diff/proxy");
    const { createSnapshotterClient } = await import("@berth/snapshotter/proxy");
    unpackOptions = {
      snapshotter: createSnapshotterClient(ctx.transport(), snapshotterName),
      applier: createDiffClient(ctx.transport()),
      snapshotterName,
      platform:
        opts.platform.length > 0
          ? platforms.only(platforms.parse(opts.platform[0] as string))
          : platforms.defaultMatcher(),
    };
  }
  const leases = await leasesClient(ctx);
  let result: import("@berth/images/pull").PullResult;
  try {
    result = await pull(
      libCtx(ctx),
      {
        content: store,
        resolver,
        leases: {
          async create(_c, o) {
            const { lease } = await leases.create({ id: randomLeaseId(), labels: o.labels }, ctx.callOptions());
            return { id: lease?.id ?? "" };
          },
          async delete(_c, id) {
            await leases.delete({ id }, ctx.callOptions());
          },
        },
        images: {
          async register(_c, name, target) {
            await registerImage(ctx, name, target);
          },
        },
      },
      ref,
      {
        concurrency,
        onProgress: progress.onProgress,
        ...(opts.allPlatforms ? { allPlatforms: true } : {}),
        ...(platform ? { platform } : {}),
        ...(unpackOptions ? { unpack: unpackOptions } : {}),
      },
    );
  } finally {
    progress.stop();
  }
  const unpacked = result.unpacked;
  await printPull(
    ctx,
    {
      name: result.name,
      target: result.target,
      fetched: result.fetched,
      existing: result.existing,
      ...(unpacked ? { unpacked: { ...unpacked, manifest: unpacked.manifest.digest } } : {}),
    },
    progress.bytes(),
    (performance.now() - started) / 1000,
    snapshotterName,
  );
}

/** The pull done by berthd's Pull service; false when the daemon has none (then the caller pulls client-side). */
async function pullInDaemon(ctx: CommandContext, ref: string, opts: PullFlags): Promise<boolean> {
  const { daemonPull } = await import("./daemon-pull.js");
  const tty = opts.progress && !ctx.options.json ? ctx.out.stderrTty : undefined;
  const progress = await pullProgress(tty);
  const started = performance.now();
  let result: Awaited<ReturnType<typeof daemonPull>>;
  try {
    result = await daemonPull(ctx, ref, opts, progress.onProgress);
  } finally {
    progress.stop();
  }
  if (result === undefined) return false;
  await printPull(
    ctx,
    result,
    progress.bytes(),
    (performance.now() - started) / 1000,
    result.unpacked?.snapshotter ?? opts.snapshotter ?? "overlayfs",
  );
  return true;
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
    .option("--local", "pull in this process (fetch through Content.Write, unpack through Diff), not in the daemon")
    .action(async (ref: string, opts: PullFlags, command: Command) =>
      run(command, async (ctx) => {
        // berthd pulls itself when it has the Pull service; containerd (or --local) gets the client-side pull
        if (!opts.local && (await pullInDaemon(ctx, ref, opts))) return;
        await pullImage(ctx, ref, opts, opts.unpack !== false);
      }),
    );
}

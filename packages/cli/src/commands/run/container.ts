/**
 * Creating a container from an image as ctr does: the image's config for this platform, a new active snapshot on
 * the image's unpacked chain, the default spec with the run options, and Containers.Create, all under a temporary
 * lease so that nothing is collected half-way.
 */
import type { Mount } from "@berth/api";
import type { Container } from "@berth/api/services/containers/v1";
import type { ContentStore, Ctx } from "@berth/content-store";
import { isNotFound } from "@berth/errdefs";
import { fromConnectError } from "@berth/errdefs/connect";
import type { Descriptor, ImageConfig, Spec } from "@berth/oci-spec";
import * as specLib from "@berth/oci-spec/spec";
import type { RootfsFiles, SpecOpt } from "@berth/oci-spec/spec";
import type { CallOptions } from "@connectrpc/connect";
import type { CommandContext } from "../../context.js";
import { CliError } from "../../errors.js";
import { expireLabel, leasesClient, randomLeaseId } from "../leases/index.js";

/** The runtime ctr uses when none is given. */
export const DEFAULT_RUNTIME = "io.containerd.runc.v2";
export const DEFAULT_SNAPSHOTTER = "overlayfs";
/** The container label carrying the image's stop signal (`tasks kill` sends it by default). */
export const STOP_SIGNAL_LABEL = "io.containerd.image.config.stop-signal";
const LEASE_HEADER = "containerd-lease";

/** The snapshotter from a flag, then CONTAINERD_SNAPSHOTTER, then overlayfs (as ctr). */
export function snapshotterName(flag: string | undefined, env: Readonly<Record<string, string | undefined>>): string {
  return flag || env.BERTH_SNAPSHOTTER || env.CONTAINERD_SNAPSHOTTER || DEFAULT_SNAPSHOTTER;
}

/** ctr's `--mount type=bind,src=/a,dst=/b,options=rbind:ro` (also `source`, `destination`, `target`). */
export function parseMountFlag(raw: string): { destination: string; type: string; source: string; options: string[] } {
  const m = { destination: "", type: "", source: "", options: [] as string[] };
  for (const field of raw.split(",")) {
    const eq = field.indexOf("=");
    if (eq < 0) throw new CliError(`invalid mount specification: expected key=value in ${JSON.stringify(field)}`);
    const key = field.slice(0, eq);
    const value = field.slice(eq + 1);
    switch (key) {
      case "type":
        m.type = value;
        break;
      case "source":
      case "src":
        m.source = value;
        break;
      case "destination":
      case "dst":
      case "target":
        m.destination = value;
        break;
      case "options":
        m.options = value.split(":").filter((o) => o !== "");
        break;
      default:
        throw new CliError(`mount option ${JSON.stringify(key)} not supported`);
    }
  }
  if (m.destination === "") throw new CliError(`invalid mount specification ${JSON.stringify(raw)}: no destination`);
  return m;
}

/** ctr's label arguments: `k=v`, a bare `k` is an empty value. */
export function parseLabels(args: readonly string[]): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const arg of args) {
    const eq = arg.indexOf("=");
    if (eq < 0) labels[arg] = "";
    else labels[arg.slice(0, eq)] = arg.slice(eq + 1);
  }
  return labels;
}

/** The files of a snapshot's rootfs read straight from its layer directories (no mount needed). */
export function rootfsFromMounts(mounts: readonly Mount[]): RootfsFiles | undefined {
  const [m] = mounts;
  if (mounts.length !== 1 || m === undefined) return undefined;
  const { layeredRootfs } = specLib;
  if (m.type === "bind" || m.type === "rbind") return layeredRootfs([m.source]);
  if (m.type === "overlay") {
    const opt = (name: string) => m.options.find((o) => o.startsWith(`${name}=`))?.slice(name.length + 1);
    const upper = opt("upperdir");
    const lower = (opt("lowerdir") ?? "").split(":").filter((d) => d !== "");
    return layeredRootfs([...(upper ? [upper] : []), ...lower]);
  }
  return undefined;
}

export interface ResolvedImage {
  readonly name: string;
  readonly target: Descriptor;
  readonly config: ImageConfig;
  /** The chain ID of the image's layers: the name of its top unpacked snapshot. */
  readonly chainID: string;
}

/** Looks an image up and reads its config for this platform. */
export async function resolveImage(ctx: CommandContext, ref: string): Promise<ResolvedImage> {
  const [{ Images }, images, platforms, { createContentClient }] = await Promise.all([
    import("@berth/api/services/images/v1"),
    import("@berth/images"),
    import("@berth/images/platforms"),
    import("@berth/content-store/proxy"),
  ]);
  const { image } = await ctx.client(Images).get({ name: ref }, ctx.callOptions());
  const t = image?.target;
  if (image === undefined || t === undefined) throw new CliError(`image "${ref}": not found`);
  const target: Descriptor = { mediaType: t.mediaType, digest: t.digest as Descriptor["digest"], size: Number(t.size) };
  const store: ContentStore = createContentClient(ctx.transport());
  const libCtx: Ctx = { namespace: ctx.options.namespace };
  const configDesc = await images.resolveConfig(libCtx, store, target, platforms.defaultMatcher());
  const config = await images.readConfig(libCtx, store, configDesc);
  const chainID = images.chainID(config.rootfs?.diff_ids ?? []);
  if (chainID === undefined) throw new CliError(`image "${ref}" has no layers`);
  return { name: image.name, target, config, chainID };
}

export interface CreateOptions {
  readonly id: string;
  readonly image: string;
  readonly args: readonly string[];
  readonly snapshotter: string;
  readonly runtime: string;
  readonly runcBinary?: string;
  readonly labels: Readonly<Record<string, string>>;
  /** Options applied after the image config (flags), in ctr's order. */
  readonly specOpts: (spec: typeof specLib) => SpecOpt[];
  /** Options applied before the image config (env, mounts). */
  readonly preImageOpts: (spec: typeof specLib) => SpecOpt[];
}

export interface CreatedContainer {
  readonly container: Container;
  readonly spec: Spec;
  /** The rootfs mounts of the container's new snapshot (what Tasks.Create takes). */
  readonly mounts: Mount[];
}

/** Unpacks the image into the snapshotter when its top snapshot is missing (ctr run does the same, silently). */
async function ensureUnpacked(ctx: CommandContext, image: ResolvedImage, snapshotter: string, lease: string) {
  const { Snapshots } = await import("@berth/api/services/snapshots/v1");
  try {
    await ctx
      .client(Snapshots)
      .stat({ snapshotter, key: image.chainID }, { ...ctx.callOptions(), headers: { [LEASE_HEADER]: lease } });
    return;
  } catch (err) {
    if (!isNotFound(fromConnectError(err))) throw err;
  }
  const [{ unpackImage }, { createDiffClient }, { createSnapshotterClient }, { createContentClient }, platforms] =
    await Promise.all([
      import("@berth/images/unpack"),
      import("@berth/diff/proxy"),
      import("@berth/snapshotter/proxy"),
      import("@berth/content-store/proxy"),
      import("@berth/images/platforms"),
    ]);
  const transport = ctx.transport();
  await unpackImage(
    { namespace: ctx.options.namespace, lease },
    {
      content: createContentClient(transport),
      snapshotter: createSnapshotterClient(transport, snapshotter),
      applier: createDiffClient(transport),
    },
    image.target,
    { snapshotterName: snapshotter, platform: platforms.defaultMatcher() },
  );
}

/** Creates the container (and its snapshot) as `ctr run` / `ctr containers create` do. */
export async function createContainerFromImage(ctx: CommandContext, opts: CreateOptions): Promise<CreatedContainer> {
  const [{ Containers }, { Snapshots }, api, runc, protobuf] = await Promise.all([
    import("@berth/api/services/containers/v1"),
    import("@berth/api/services/snapshots/v1"),
    import("@berth/api"),
    import("@berth/api/runc/options"),
    import("@bufbuild/protobuf"),
  ]);
  const spec = specLib;
  const image = await resolveImage(ctx, opts.image);
  const leases = await leasesClient(ctx);
  const leaseId = randomLeaseId();
  await leases.create({ id: leaseId, labels: expireLabel(24 * 3600_000) }, ctx.callOptions());
  const call = (): CallOptions => ({ ...ctx.callOptions(), headers: { [LEASE_HEADER]: leaseId } });
  const snapshots = ctx.client(Snapshots);
  let prepared = false;
  try {
    await ensureUnpacked(ctx, image, opts.snapshotter, leaseId);
    const { mounts } = await snapshots.prepare(
      { snapshotter: opts.snapshotter, key: opts.id, parent: image.chainID },
      call(),
    );
    prepared = true;
    const generated = await spec.generateSpec(
      { id: opts.id, namespace: ctx.options.namespace, rootfs: rootfsFromMounts(mounts) },
      spec.withDefaultUnixDevices,
      ...opts.preImageOpts(spec),
      spec.withImageConfig(image.config.config),
      ...(opts.args.length > 0 ? [spec.withProcessArgs(...opts.args)] : []),
      ...opts.specOpts(spec),
    );
    if ((generated.process?.args ?? []).length === 0) throw new CliError("no command specified");
    const runtimeOptions = protobuf.create(runc.OptionsSchema, { binaryName: opts.runcBinary ?? "" });
    const { container } = await ctx.client(Containers).create(
      {
        container: {
          id: opts.id,
          image: image.name,
          labels: { [STOP_SIGNAL_LABEL]: image.config.config?.StopSignal || "SIGTERM", ...opts.labels },
          runtime: { name: opts.runtime, options: api.packAny(runc.OptionsSchema, runtimeOptions) },
          spec: api.packJsonAny(api.SPEC_TYPE_URL, spec.inGoFieldOrder(generated)),
          snapshotter: opts.snapshotter,
          snapshotKey: opts.id,
        },
      },
      call(),
    );
    if (container === undefined) throw new Error("Containers.Create returned no container");
    return { container, spec: generated, mounts };
  } catch (err) {
    if (prepared) await snapshots.remove({ snapshotter: opts.snapshotter, key: opts.id }, call()).catch(() => {});
    throw err;
  } finally {
    await leases.delete({ id: leaseId }, ctx.callOptions()).catch(() => {});
  }
}

/**
 * `berth images mount|unmount` (ctr's): mount unpacks the image for the platform (when it is not yet), makes a
 * view (or, with --rw, an active snapshot) named after the target path on its chain, and mounts it there, all
 * under a lease named after the target that holds the snapshot; unmount unmounts, and with --rm deletes the
 * lease and removes the snapshot.
 */
import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { relative, resolve } from "node:path";
import { promisify } from "node:util";
import { isAlreadyExists, isNotFound } from "@berth/errdefs";
import { fromConnectError } from "@berth/errdefs/connect";
import type { Descriptor } from "@berth/oci-spec";
import { Command } from "commander";
import type { CommandContext } from "../../context.js";
import { CliError } from "../../errors.js";
import type { RunCommand } from "../../program.js";
import { expireLabel, leasesClient } from "../leases/index.js";

const DEFAULT_SNAPSHOTTER = process.env.CONTAINERD_SNAPSHOTTER || "overlayfs";
const exec = promisify(execFile);

interface MountSpec {
  readonly type: string;
  readonly source: string;
  readonly options: readonly string[];
}

/**
 * mount(8) of each mount at `target`, as ctr's mount.All (here rather than the snapshotter package's helper,
 * whose entry point loads the snapshotters and their SQLite addon). Overlay options longer than a page get their
 * lowerdirs relative to their common parent, with mount(8) run there.
 */
async function mountAll(mounts: readonly MountSpec[], target: string): Promise<void> {
  for (const m of mounts) {
    let options = [...m.options];
    let cwd: string | undefined;
    const i = options.findIndex((o) => o.startsWith("lowerdir="));
    if (m.type === "overlay" && i >= 0 && options.join(",").length > 3500) {
      const dirs = options[i]!.slice("lowerdir=".length).split(":");
      let common = dirs[0]!.split("/").slice(0, -1);
      for (const d of dirs) {
        const parts = d.split("/");
        let n = 0;
        while (n < common.length && n < parts.length - 1 && common[n] === parts[n]) n++;
        common = common.slice(0, n);
      }
      cwd = common.join("/") || "/";
      options = options.map((o, j) => (j === i ? `lowerdir=${dirs.map((d) => relative(cwd!, d)).join(":")}` : o));
    }
    const args = ["-t", m.type, ...(options.length > 0 ? ["-o", options.join(",")] : []), "--", m.source, target];
    try {
      await exec("mount", args, cwd === undefined ? {} : { cwd });
    } catch (err) {
      throw new CliError(`mount ${m.type} at ${target}: ${String((err as { stderr?: string }).stderr ?? err).trim()}`);
    }
  }
}

/** Unmounts everything stacked at `target` (ctr's mount.UnmountAll); nothing mounted there is fine. */
async function unmountAll(target: string): Promise<void> {
  const path = resolve(target);
  const mounted = async () =>
    (await readFile("/proc/self/mountinfo", "utf8"))
      .split("\n")
      .some((l) => l.split(" ")[4]?.replace(/\\040/g, " ") === path);
  for (let n = 0; n < 64 && (await mounted()); n++) {
    try {
      await exec("umount", ["--", path]);
    } catch (err) {
      throw new CliError(`unmount ${path}: ${String((err as { stderr?: string }).stderr ?? err).trim()}`);
    }
  }
}

interface MountFlags {
  rw?: boolean;
  platform?: string;
  snapshotter: string;
}

async function imageTarget(ctx: CommandContext, name: string): Promise<Descriptor> {
  const { Images } = await import("@berth/api/services/images/v1");
  const { image } = await ctx.client(Images).get({ name }, ctx.callOptions());
  const t = image?.target;
  if (t === undefined) throw new CliError(`image ${JSON.stringify(name)}: not found`);
  return {
    mediaType: t.mediaType,
    digest: t.digest as Descriptor["digest"],
    size: Number(t.size),
    ...(Object.keys(t.annotations).length > 0 ? { annotations: { ...t.annotations } } : {}),
  };
}

function mountCommand(run: RunCommand): Command {
  return new Command("mount")
    .description("mount an image's rootfs at a target path (unpacking it first when needed)")
    .argument("<ref>", "the image")
    .argument("<target>", "the directory to mount at")
    .option("--rw", "mount a writable snapshot instead of a read-only view")
    .option("--platform <platform>", "mount the image for this platform (default: the host's)")
    .option("--snapshotter <name>", "snapshotter to unpack into and mount from", DEFAULT_SNAPSHOTTER)
    .action(async (ref: string, target: string, opts: MountFlags, command: Command) =>
      run(command, async (ctx) => {
        const [{ unpackImage }, platforms, { createDiffClient }, { createContentClient }, { Snapshots }] =
          await Promise.all([
            import("@berth/images/unpack"),
            import("@berth/images/platforms"),
            import("@berth/diff/proxy"),
            import("@berth/content-store/proxy"),
            import("@berth/api/services/snapshots/v1"),
          ]);
        const { createSnapshotterClient } = await import("@berth/snapshotter/proxy");
        const snapshotter = opts.snapshotter;
        const leases = await leasesClient(ctx);
        try {
          await leases.create(
            {
              id: target,
              labels: { ...expireLabel(24 * 3600 * 1000), [`containerd.io/gc.ref.snapshot.${snapshotter}`]: target },
            },
            ctx.callOptions(),
          );
        } catch (err) {
          if (!isAlreadyExists(fromConnectError(err))) throw err;
        }
        const lctx = { namespace: ctx.options.namespace, lease: target };
        const platform = opts.platform ? platforms.only(platforms.parse(opts.platform)) : platforms.defaultMatcher();
        const sn = createSnapshotterClient(ctx.transport(), snapshotter);
        const { chainID } = await unpackImage(
          lctx,
          {
            content: createContentClient(ctx.transport()),
            snapshotter: sn,
            applier: createDiffClient(ctx.transport()),
          },
          await imageTarget(ctx, ref),
          { snapshotterName: snapshotter, platform },
        );
        ctx.out.stdout(`${chainID}\n`);
        let mounts: Awaited<ReturnType<typeof sn.prepare>>;
        try {
          mounts = opts.rw ? await sn.prepare(lctx, target, chainID) : await sn.view(lctx, target, chainID);
        } catch (err) {
          if (!isAlreadyExists(err)) throw err;
          mounts = await sn.mounts(lctx, target);
        }
        try {
          await mountAll(mounts, target);
        } catch (err) {
          try {
            await ctx.client(Snapshots).remove({ snapshotter, key: target }, ctx.callOptions());
          } catch (rerr) {
            if (!isNotFound(fromConnectError(rerr))) {
              ctx.out.stderr(`berth: error cleaning up snapshot after mount error: ${String(rerr)}\n`);
            }
          }
          throw err;
        }
        ctx.out.stdout(`${target}\n`);
      }),
    );
}

function unmountCommand(run: RunCommand): Command {
  return new Command("unmount")
    .description("unmount an image's rootfs from a target path")
    .argument("<target>", "the mount point")
    .option("--rm", "remove the snapshot (and its lease) after a successful unmount")
    .option("--snapshotter <name>", "snapshotter the image was mounted from", DEFAULT_SNAPSHOTTER)
    .action(async (target: string, opts: { rm?: boolean; snapshotter: string }, command: Command) =>
      run(command, async (ctx) => {
        await unmountAll(target);
        if (opts.rm) {
          const { Snapshots } = await import("@berth/api/services/snapshots/v1");
          const leases = await leasesClient(ctx);
          try {
            await leases.delete({ id: target }, ctx.callOptions());
          } catch (err) {
            if (!isNotFound(fromConnectError(err))) throw new CliError(`error deleting lease: ${String(err)}`);
          }
          try {
            await ctx.client(Snapshots).remove({ snapshotter: opts.snapshotter, key: target }, ctx.callOptions());
          } catch (err) {
            if (!isNotFound(fromConnectError(err))) throw new CliError(`error removing snapshot: ${String(err)}`);
          }
        }
        ctx.out.stdout(`${target}\n`);
      }),
    );
}

export { mountCommand as imagesMountCommand, unmountCommand as imagesUnmountCommand };

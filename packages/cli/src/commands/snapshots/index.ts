/**
 * `berth snapshots ls|tree|info|mounts|prepare|view|commit|rm|label|usage|diff` (ctr snapshots), against the
 * snapshotter chosen with `--snapshotter` (env CONTAINERD_SNAPSHOTTER; default overlayfs).
 */
import type { Mount } from "@berth/api";
import type { Info } from "@berth/api/services/snapshots/v1";
import { Command, Option } from "commander";
import type { CommandContext } from "../../context.js";
import { CliError } from "../../errors.js";
import { goRfc3339Nano } from "../../go-format.js";
import { compareStrings, TabWriter, writeJson } from "../../output.js";
import type { RunCommand } from "../../program.js";
import { goIndentJson } from "../containers/index.js";
import { expireLabel, leasesClient, randomLeaseId } from "../leases/index.js";

const GC_ROOT_LABEL = "containerd.io/gc.root";
const LEASE_HEADER = "containerd-lease";

async function snapshotsClient(ctx: CommandContext) {
  const { Snapshots } = await import("@berth/api/services/snapshots/v1");
  return ctx.client(Snapshots);
}

/** The snapshotter of the `snapshots` group (its --snapshotter flag). */
async function snapshotterOf(command: Command): Promise<string> {
  const flags = command.optsWithGlobals() as { snapshotter?: string };
  // imported on use: run/container.js brings the OCI spec library, which most snapshot commands do not need
  const { snapshotterName } = await import("../run/container.js");
  return snapshotterName(flags.snapshotter, process.env);
}

async function parseLabels(args: readonly string[]): Promise<Record<string, string>> {
  return (await import("../run/container.js")).parseLabels(args);
}

const KIND_NAMES = ["Unknown", "View", "Active", "Committed"];

export function kindName(kind: number): string {
  return KIND_NAMES[kind] ?? "Unknown";
}

/** Go's `time.Now().UTC().Format(time.RFC3339)`. */
function rfc3339Now(): string {
  return new Date().toISOString().replace(/\.\d+Z$/, "Z");
}

/** Every snapshot of the snapshotter (the Walk stream, flattened). */
async function walk(ctx: CommandContext, snapshotter: string, filters: string[] = []): Promise<Info[]> {
  const out: Info[] = [];
  for await (const res of (await snapshotsClient(ctx)).list({ snapshotter, filters }, ctx.callOptions())) {
    out.push(...res.info);
  }
  return out;
}

/** A snapshot's info as ctr prints containerd's Go `snapshots.Info`. */
export function snapshotInfoJson(info: Info): Record<string, unknown> {
  const labels = Object.entries(info.labels).sort((a, b) => compareStrings(a[0], b[0]));
  return {
    Kind: kindName(info.kind),
    Name: info.name,
    ...(info.parent !== "" ? { Parent: info.parent } : {}),
    ...(labels.length > 0 ? { Labels: Object.fromEntries(labels) } : {}),
    Created: goRfc3339Nano(info.createdAt),
    Updated: goRfc3339Nano(info.updatedAt),
  };
}

/** ctr's `mount -t TYPE SOURCE TARGET -o OPTIONS` lines. */
export function formatMountCommands(target: string, mounts: readonly Mount[]): string {
  return mounts.map((m) => `mount -t ${m.type} ${m.source} ${target} -o ${m.options.join(",")}\n`).join("");
}

function mountsJson(mounts: readonly Mount[]) {
  return mounts.map((m) => ({
    type: m.type,
    source: m.source,
    ...(m.target ? { target: m.target } : {}),
    options: m.options,
  }));
}

/** ctr's tree: roots in walk order, children indented two spaces per level with `\_`. */
export function formatTree(infos: readonly Pick<Info, "name" | "parent">[]): string {
  const nodes: { name: string; parent: string; children: string[] }[] = [];
  const index = new Map<string, (typeof nodes)[number]>();
  const add = (name: string, parent: string) => {
    let node = index.get(name);
    if (node === undefined) {
      node = { name, parent, children: [] };
      nodes.push(node);
      index.set(name, node);
    } else {
      node.parent = parent;
    }
    if (parent !== "") {
      const pn = index.get(parent) ?? add(parent, "");
      pn.children.push(name);
    }
    return node;
  };
  for (const i of infos) add(i.name, i.parent);
  let out = "";
  const print = (name: string, level: number) => {
    const node = index.get(name);
    if (node === undefined) return;
    out += `${"  ".repeat(level)}${level > 0 ? "\\_" : ""} ${name}\n`;
    for (const child of node.children) print(child, level + 1);
  };
  for (const n of nodes) if (n.parent === "") print(n.name, 0);
  return out;
}

function listCommand(run: RunCommand): Command {
  return new Command("list")
    .alias("ls")
    .description("list snapshots")
    .argument("[filters...]", "filters, e.g. kind==active, parent==<key>")
    .action(async (filters: string[], _opts: unknown, command: Command) =>
      run(command, async (ctx) => {
        const infos = await walk(ctx, await snapshotterOf(command), filters);
        if (ctx.options.json) {
          writeJson(ctx.out, infos.map(snapshotInfoJson));
          return;
        }
        const w = new TabWriter({ minWidth: 1, tabWidth: 8, padding: 1 });
        w.row("KEY", "PARENT", "KIND");
        for (const i of infos) w.row(i.name, i.parent, kindName(i.kind));
        ctx.out.stdout(w.flush());
      }),
    );
}

function treeCommand(run: RunCommand): Command {
  return new Command("tree")
    .description("display a tree of the snapshots' parent chains")
    .action(async (_opts: unknown, command: Command) =>
      run(command, async (ctx) => {
        const infos = await walk(ctx, await snapshotterOf(command));
        if (ctx.options.json)
          writeJson(
            ctx.out,
            infos.map((i) => ({ name: i.name, parent: i.parent })),
          );
        else ctx.out.stdout(formatTree(infos));
      }),
    );
}

function infoCommand(run: RunCommand): Command {
  return new Command("info")
    .description("get info about a snapshot")
    .argument("<key>", "snapshot key")
    .action(async (key: string, _opts: unknown, command: Command) =>
      run(command, async (ctx) => {
        const { info } = await (await snapshotsClient(ctx)).stat(
          { snapshotter: await snapshotterOf(command), key },
          ctx.callOptions(),
        );
        if (info === undefined) throw new CliError(`snapshot ${key}: not found`);
        const value = snapshotInfoJson(info);
        ctx.out.stdout(`${ctx.options.json ? JSON.stringify(value) : goIndentJson(value)}\n`);
      }),
    );
}

function mountsCommand(run: RunCommand): Command {
  return new Command("mounts")
    .aliases(["m", "mount"])
    .description("print the mount commands for a snapshot")
    .argument("<target>", "where the mounts would go")
    .argument("<key>", "snapshot key")
    .action(async (target: string, key: string, _opts: unknown, command: Command) =>
      run(command, async (ctx) => {
        const { mounts } = await (await snapshotsClient(ctx)).mounts(
          { snapshotter: await snapshotterOf(command), key },
          ctx.callOptions(),
        );
        if (ctx.options.json) writeJson(ctx.out, mountsJson(mounts));
        else ctx.out.stdout(formatMountCommands(target, mounts));
      }),
    );
}

function prepareOrView(run: RunCommand, kind: "prepare" | "view"): Command {
  return new Command(kind)
    .description(kind === "prepare" ? "prepare an active snapshot" : "create a read-only view of a snapshot")
    .argument("<key>", "the new snapshot's key")
    .argument("[parent]", "parent snapshot")
    .option("-t, --target <path>", "print the mount commands for this target")
    .option("--mounts", "print the mounts as JSON")
    .action(
      async (key: string, parent: string | undefined, opts: { target?: string; mounts?: boolean }, command: Command) =>
        run(command, async (ctx) => {
          const client = await snapshotsClient(ctx);
          const req = {
            snapshotter: await snapshotterOf(command),
            key,
            parent: parent ?? "",
            labels: { [GC_ROOT_LABEL]: rfc3339Now() },
          };
          const { mounts } =
            kind === "prepare"
              ? await client.prepare(req, ctx.callOptions())
              : await client.view(req, ctx.callOptions());
          if (opts.target) ctx.out.stdout(formatMountCommands(opts.target, mounts));
          if (opts.mounts || ctx.options.json) ctx.out.stdout(`${goIndentJson(mountsJson(mounts))}\n`);
        }),
    );
}

function commitCommand(run: RunCommand): Command {
  return new Command("commit")
    .description("commit an active snapshot under a name")
    .argument("<name>", "name of the committed snapshot")
    .argument("<active>", "key of the active snapshot")
    .action(async (name: string, key: string, _opts: unknown, command: Command) =>
      run(command, async (ctx) => {
        await (await snapshotsClient(ctx)).commit(
          { snapshotter: await snapshotterOf(command), name, key, labels: { [GC_ROOT_LABEL]: rfc3339Now() } },
          ctx.callOptions(),
        );
      }),
    );
}

function removeCommand(run: RunCommand): Command {
  return new Command("delete")
    .aliases(["del", "remove", "rm"])
    .description("remove snapshots")
    .argument("<keys...>", "snapshot keys")
    .action(async (keys: string[], _opts: unknown, command: Command) =>
      run(command, async (ctx) => {
        const client = await snapshotsClient(ctx);
        const { errorMessage } = await import("../../errors.js");
        for (const key of keys) {
          try {
            await client.remove({ snapshotter: await snapshotterOf(command), key }, ctx.callOptions());
          } catch (err) {
            throw new CliError(`failed to remove "${key}": ${errorMessage(err, ctx.options.address)}`);
          }
        }
      }),
    );
}

function labelCommand(run: RunCommand): Command {
  return new Command("label")
    .description("set and clear labels of a snapshot (key= clears)")
    .argument("<key>", "snapshot key")
    .argument("[labels...]", "key=value pairs")
    .action(async (key: string, args: string[], _opts: unknown, command: Command) =>
      run(command, async (ctx) => {
        const labels = await parseLabels(args);
        const snapshotter = await snapshotterOf(command);
        const client = await snapshotsClient(ctx);
        const paths = Object.keys(labels).map((k) => `labels.${k}`);
        const set = Object.fromEntries(Object.entries(labels).filter(([, v]) => v !== ""));
        const { info } =
          paths.length === 0
            ? await client.stat({ snapshotter, key }, ctx.callOptions())
            : await client.update(
                { snapshotter, info: { name: key, labels: set }, updateMask: { paths } },
                ctx.callOptions(),
              );
        const pairs = Object.entries(info?.labels ?? {})
          .map(([k, v]) => `${k}=${v}`)
          .sort(compareStrings);
        if (ctx.options.json) writeJson(ctx.out, Object.fromEntries(Object.entries(info?.labels ?? {}).sort()));
        else ctx.out.stdout(`${pairs.join(",")}\n`);
      }),
    );
}

function usageCommand(run: RunCommand): Command {
  return new Command("usage")
    .description("disk usage of snapshots")
    .argument("[keys...]", "snapshot keys (default: all)")
    .option("-b", "display sizes in bytes")
    .action(async (keys: string[], opts: { b?: boolean }, command: Command) =>
      run(command, async (ctx) => {
        const snapshotter = await snapshotterOf(command);
        const client = await snapshotsClient(ctx);
        const names = keys.length > 0 ? keys : (await walk(ctx, snapshotter)).map((i) => i.name);
        const rows: { key: string; size: bigint; inodes: bigint }[] = [];
        for (const key of names) {
          const u = await client.usage({ snapshotter, key }, ctx.callOptions());
          rows.push({ key, size: u.size, inodes: u.inodes });
        }
        if (ctx.options.json) {
          writeJson(
            ctx.out,
            rows.map((r) => ({ key: r.key, size: Number(r.size), inodes: Number(r.inodes) })),
          );
          return;
        }
        const w = new TabWriter({ minWidth: 1, tabWidth: 8, padding: 1 });
        w.row("KEY", "SIZE", "INODES");
        const { progressBytes } = await import("../images/index.js");
        for (const r of rows) w.row(r.key, opts.b ? `${r.size}` : progressBytes(Number(r.size)), `${r.inodes}`);
        ctx.out.stdout(w.flush());
      }),
    );
}

/** A random suffix for temporary view keys (containerd's uniquePart: time and random bytes). */
function uniquePart(): string {
  const t = process.hrtime.bigint() % 1_000_000_000n;
  return `${t}-${Math.random().toString(36).slice(2, 8)}`;
}

interface DiffFlags {
  mediaType: string;
  ref?: string;
  keep?: boolean;
  label: string[];
}

function diffCommand(run: RunCommand): Command {
  return new Command("diff")
    .description("compute a layer between a snapshot and its parent (or between two snapshots) and print it")
    .argument("<idA>", "snapshot")
    .argument("[idB]", "second snapshot (default: idA against its parent)")
    .addOption(
      new Option("--media-type <type>", "media type of the layer").default(
        "application/vnd.oci.image.layer.v1.tar+gzip",
      ),
    )
    .option("--ref <ref>", "content upload reference")
    .option("--keep", "keep the layer in the content store (labelled as a GC root)")
    .option("--label <key=value>", "label the layer (repeatable)", (v: string, p: string[]) => [...p, v], [])
    .action(async (idA: string, idB: string | undefined, flags: DiffFlags, command: Command) =>
      run(command, async (ctx) => {
        const [{ Diff }, { Content }, { Kind }] = await Promise.all([
          import("@berth/api/services/diff/v1"),
          import("@berth/api/services/content/v1"),
          import("@berth/api/services/snapshots/v1"),
        ]);
        const snapshotter = await snapshotterOf(command);
        const client = await snapshotsClient(ctx);
        const leases = await leasesClient(ctx);
        const leaseId = randomLeaseId();
        await leases.create({ id: leaseId, labels: expireLabel(24 * 3600_000) }, ctx.callOptions());
        const call = () => ({ ...ctx.callOptions(), headers: { [LEASE_HEADER]: leaseId } });
        const views: string[] = [];
        const view = async (key: string, parent: string) => {
          const { mounts } = await client.view({ snapshotter, key, parent }, call());
          views.push(key);
          return mounts;
        };
        /** Mounts of an active snapshot directly; of any other kind through a temporary view. */
        const mountsOf = async (key: string) => {
          const { info } = await client.stat({ snapshotter, key }, call());
          if (info?.kind === Kind.ACTIVE) return (await client.mounts({ snapshotter, key }, call())).mounts;
          return view(`${key}-view-${uniquePart()}`, key);
        };
        try {
          const labels = await parseLabels(flags.label);
          if (flags.keep) labels[GC_ROOT_LABEL] = rfc3339Now();
          let left: Mount[];
          let right: Mount[];
          if (idB === undefined) {
            const { info } = await client.stat({ snapshotter, key: idA }, call());
            left = await view(`${info?.parent ?? ""}-parent-view-${uniquePart()}`, info?.parent ?? "");
            right = await mountsOf(idA);
          } else {
            left = await mountsOf(idA);
            right = await mountsOf(idB);
          }
          const { diff } = await ctx
            .client(Diff)
            .diff({ left, right, mediaType: flags.mediaType, ref: flags.ref ?? "", labels }, call());
          if (diff === undefined) throw new Error("the Diff service returned no descriptor");
          for await (const chunk of ctx.client(Content).read({ digest: diff.digest, offset: 0n, size: 0n }, call())) {
            await ctx.out.stdoutBytes(chunk.data);
          }
        } finally {
          for (const key of views) await client.remove({ snapshotter, key }, ctx.callOptions()).catch(() => {});
          await leases.delete({ id: leaseId }, ctx.callOptions()).catch(() => {});
        }
      }),
    );
}

export function snapshotsCommand(run: RunCommand): Command {
  return new Command("snapshots")
    .alias("snapshot")
    .description("manage snapshots")
    .addOption(new Option("--snapshotter <name>", "snapshotter name (env CONTAINERD_SNAPSHOTTER; default overlayfs)"))
    .addCommand(listCommand(run))
    .addCommand(treeCommand(run))
    .addCommand(infoCommand(run))
    .addCommand(mountsCommand(run))
    .addCommand(prepareOrView(run, "prepare"))
    .addCommand(prepareOrView(run, "view"))
    .addCommand(commitCommand(run))
    .addCommand(removeCommand(run))
    .addCommand(labelCommand(run))
    .addCommand(usageCommand(run))
    .addCommand(diffCommand(run));
}

/** `berth containers ls|info|create|rm|label` (ctr containers: Containers.List / Get / Create / Delete / Update). */
import type { Container } from "@berth/api/services/containers/v1";
import { isNotFound } from "@berth/errdefs";
import { fromConnectError } from "@berth/errdefs/connect";
import { Command } from "commander";
import { type CommandContext, ExitError } from "../../context.js";
import { CliError, errorMessage } from "../../errors.js";
import { goRfc3339Nano } from "../../go-format.js";
import { compareStrings, TabWriter, writeJson } from "../../output.js";
import { PositionalCommand } from "../../positional-command.js";
import type { RunCommand } from "../../program.js";
import { addContainerFlags, type ContainerFlags, createFromFlags } from "../run/index.js";

export async function containersClient(ctx: CommandContext) {
  const { Containers } = await import("@berth/api/services/containers/v1");
  return ctx.client(Containers);
}

/** `CONTAINER IMAGE RUNTIME`, as ctr's `tabwriter.NewWriter(os.Stdout, 4, 8, 4, ' ', 0)`. */
export function formatContainerTable(containers: readonly Container[]): string {
  const w = new TabWriter({ minWidth: 4, tabWidth: 8, padding: 4 });
  w.row("CONTAINER", "IMAGE", "RUNTIME");
  for (const c of containers) w.row(c.id, c.image === "" ? "-" : c.image, c.runtime?.name ?? "");
  return w.flush();
}

function sortedOrNull(labels: Readonly<Record<string, string>>): Record<string, string> | null {
  const entries = Object.entries(labels).sort((a, b) => compareStrings(a[0], b[0]));
  return entries.length === 0 ? null : Object.fromEntries(entries);
}

function goAny(any: { typeUrl: string; value: Uint8Array } | undefined) {
  if (any === undefined) return null;
  return {
    ...(any.typeUrl !== "" ? { type_url: any.typeUrl } : {}),
    ...(any.value.length > 0 ? { value: Buffer.from(any.value).toString("base64") } : {}),
  };
}

/** The container as ctr's `containers info` prints containerd's Go struct (with the spec decoded). */
export function containerInfoJson(c: Container): Record<string, unknown> {
  const extensions = Object.entries(c.extensions);
  const info: Record<string, unknown> = {
    ID: c.id,
    Labels: sortedOrNull(c.labels),
    Image: c.image,
    Runtime: { Name: c.runtime?.name ?? "", Options: goAny(c.runtime?.options) },
    SnapshotKey: c.snapshotKey,
    Snapshotter: c.snapshotter,
    CreatedAt: goRfc3339Nano(c.createdAt),
    UpdatedAt: goRfc3339Nano(c.updatedAt),
    Extensions: extensions.length === 0 ? null : Object.fromEntries(extensions.map(([k, v]) => [k, goAny(v)])),
  };
  if (c.spec !== undefined && c.spec.value.length > 0) {
    info.Spec = JSON.parse(Buffer.from(c.spec.value).toString("utf8"));
  }
  return info;
}

/** Go's `json.MarshalIndent(v, "", "    ")` for plain JSON values. */
export function goIndentJson(value: unknown): string {
  return JSON.stringify(value, null, 4).replace(/</g, "\\u003c").replace(/>/g, "\\u003e").replace(/&/g, "\\u0026");
}

function listCommand(run: RunCommand): Command {
  return new Command("list")
    .alias("ls")
    .description("list containers")
    .argument("[filters...]", 'filters, e.g. image==docker.io/library/busybox:latest or "labels.x==y"')
    .option("-q, --quiet", "print only the container ids")
    .action(async (filters: string[], opts: { quiet?: boolean }, command: Command) =>
      run(command, async (ctx) => {
        const { containers } = await (await containersClient(ctx)).list({ filters }, ctx.callOptions());
        if (ctx.options.json) writeJson(ctx.out, containers.map(containerInfoJson));
        else if (opts.quiet) ctx.out.stdout(containers.map((c) => `${c.id}\n`).join(""));
        else ctx.out.stdout(formatContainerTable(containers));
      }),
    );
}

function infoCommand(run: RunCommand): Command {
  return new Command("info")
    .description("get info about a container")
    .argument("<id>", "container id")
    .option("--spec", "only display the spec")
    .action(async (id: string, opts: { spec?: boolean }, command: Command) =>
      run(command, async (ctx) => {
        const { container } = await (await containersClient(ctx)).get({ id }, ctx.callOptions());
        if (container === undefined) throw new CliError(`container "${id}": not found`);
        const info = containerInfoJson(container);
        const value = opts.spec ? (info.Spec ?? null) : info;
        ctx.out.stdout(`${ctx.options.json ? JSON.stringify(value) : goIndentJson(value)}\n`);
      }),
    );
}

function createCommand(run: RunCommand): Command {
  const command = new PositionalCommand("create")
    .description("create a container from an image (with a new snapshot of it)")
    .argument("<image>", "image name")
    .argument("<id>", "container id")
    .argument("[cmd...]", "command and arguments (default: the image's)");
  addContainerFlags(command);
  return command.action(async (image: string, id: string, cmd: string[], flags: ContainerFlags, self: Command) =>
    run(self, async (ctx) => {
      await createFromFlags(ctx, image, id, cmd, flags);
    }),
  );
}

/** Deletes a container whose task is stopped or absent, with its snapshot unless `keepSnapshot`. */
export async function deleteContainer(ctx: CommandContext, id: string, keepSnapshot: boolean): Promise<void> {
  const [{ Tasks }, { Snapshots }, { Status }] = await Promise.all([
    import("@berth/api/services/tasks/v1"),
    import("@berth/api/services/snapshots/v1"),
    import("@berth/api/types/task"),
  ]);
  const containers = await containersClient(ctx);
  const { container } = await containers.get({ id }, ctx.callOptions());
  if (container === undefined) throw new CliError(`container "${id}": not found`);
  const tasks = ctx.client(Tasks);
  try {
    const { process: task } = await tasks.get({ containerId: id }, ctx.callOptions());
    const status = task?.status ?? Status.UNKNOWN;
    if (status !== Status.STOPPED && status !== Status.CREATED) {
      throw new CliError(
        `cannot delete a non stopped container: {${Status[status]?.toLowerCase() ?? status} 0 0001-01-01 00:00:00 +0000 UTC}`,
      );
    }
    await tasks.delete({ containerId: id }, ctx.callOptions());
  } catch (err) {
    if (err instanceof CliError || !isNotFound(fromConnectError(err))) throw err;
  }
  if (!keepSnapshot && container.snapshotKey !== "") {
    if (container.snapshotter === "")
      throw new CliError("container.Snapshotter must be set to cleanup rootfs snapshot");
    try {
      await ctx
        .client(Snapshots)
        .remove({ snapshotter: container.snapshotter, key: container.snapshotKey }, ctx.callOptions());
    } catch (err) {
      if (!isNotFound(fromConnectError(err))) throw err;
    }
  }
  await containers.delete({ id }, ctx.callOptions());
}

function deleteCommand(run: RunCommand): Command {
  return new Command("delete")
    .aliases(["del", "remove", "rm"])
    .description("delete one or more containers (and their snapshots)")
    .argument("<ids...>", "container ids")
    .option("--keep-snapshot", "do not remove the container's snapshot")
    .action(async (ids: string[], opts: { keepSnapshot?: boolean }, command: Command) =>
      run(command, async (ctx) => {
        let failed = false;
        for (const id of ids) {
          try {
            await deleteContainer(ctx, id, opts.keepSnapshot === true);
          } catch (err) {
            failed = true;
            ctx.out.stderr(`berth: failed to delete container "${id}": ${errorMessage(err, ctx.options.address)}\n`);
          }
        }
        if (failed) throw new ExitError(1);
      }),
    );
}

function labelCommand(run: RunCommand): Command {
  return new Command("label")
    .description("set and clear labels of a container (key= clears)")
    .argument("<id>", "container id")
    .argument("[labels...]", "key=value pairs")
    .action(async (id: string, args: string[], _opts: unknown, command: Command) =>
      run(command, async (ctx) => {
        const { parseLabels } = await import("../run/container.js");
        const labels = parseLabels(args);
        const client = await containersClient(ctx);
        const set = Object.fromEntries(Object.entries(labels).filter(([, v]) => v !== ""));
        const paths = Object.keys(labels).map((k) => `labels.${k}`);
        const { container } =
          paths.length === 0
            ? await client.get({ id }, ctx.callOptions())
            : await client.update({ container: { id, labels: set }, updateMask: { paths } }, ctx.callOptions());
        const result = container?.labels ?? {};
        if (ctx.options.json) writeJson(ctx.out, sortedOrNull(result) ?? {});
        else {
          const pairs = Object.entries(result)
            .map(([k, v]) => `${k}=${v}`)
            .sort(compareStrings);
          ctx.out.stdout(`${pairs.join(",")}\n`);
        }
      }),
    );
}

export function containersCommand(run: RunCommand): Command {
  return new Command("containers")
    .alias("c")
    .alias("container")
    .description("manage containers")
    .addCommand(listCommand(run))
    .addCommand(infoCommand(run))
    .addCommand(createCommand(run))
    .addCommand(deleteCommand(run))
    .addCommand(labelCommand(run));
}

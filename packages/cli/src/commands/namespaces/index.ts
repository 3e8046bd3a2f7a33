/** `berth namespaces create|ls|label|rm` (ctr: Namespaces.Create / List + Get / Update / Delete). */
import { isNotFound, isUnavailable } from "@berth/errdefs";
import { fromConnectError } from "@berth/errdefs/connect";
import { Command } from "commander";
import { type CommandContext, ExitError } from "../../context.js";
import { CliError, errorMessage } from "../../errors.js";
import { compareStrings, formatLabels, TabWriter, writeJson } from "../../output.js";
import type { RunCommand } from "../../program.js";

/** Loaded on use, so that `berth --help` and other commands skip decoding this file's descriptors. */
async function namespacesClient(ctx: CommandContext) {
  const { Namespaces } = await import("@berth/api/services/namespaces/v1");
  return ctx.client(Namespaces);
}

/**
 * `key=value` arguments as ctr's `LabelArgs` reads them: split at the first `=`; a bare `key` means `key=true`;
 * `key=` gives an empty value (which `label` uses to remove the label).
 */
export function parseLabelArgs(args: readonly string[]): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const arg of args) {
    const i = arg.indexOf("=");
    if (i < 0) labels[arg] = "true";
    else labels[arg.slice(0, i)] = arg.slice(i + 1);
  }
  return labels;
}

export interface NamespaceRow {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
}

/** `NAME LABELS`, laid out as ctr's `tabwriter.NewWriter(os.Stdout, 1, 8, 1, ' ', 0)`. */
export function formatNamespaceTable(rows: readonly NamespaceRow[]): string {
  const w = new TabWriter({ minWidth: 1, padding: 1 });
  w.row("NAME", "LABELS");
  for (const r of rows) w.row(r.name, formatLabels(r.labels));
  return w.flush();
}

const byKey = (a: [string, string], b: [string, string]) => compareStrings(a[0], b[0]);

function requireName(name: string | undefined): string {
  if (name === undefined || name === "") throw new CliError("please specify a namespace");
  return name;
}

function createCommand(run: RunCommand): Command {
  return new Command("create")
    .alias("c")
    .description("create a new namespace; it must be unique")
    .argument("<name>", "namespace name")
    .argument("[labels...]", "labels as key=value")
    .action(async (name: string, labels: string[], _opts: unknown, command: Command) =>
      run(command, async (ctx) => {
        const ns = { name: requireName(name), labels: parseLabelArgs(labels) };
        await (await namespacesClient(ctx)).create({ namespace: ns }, ctx.callOptions());
      }),
    );
}

function labelCommand(run: RunCommand): Command {
  return new Command("label")
    .description("set and clear labels for a namespace; an empty value clears the label")
    .argument("<name>", "namespace name")
    .argument("[labels...]", "labels as key=value (key= removes)")
    .action(async (name: string, labels: string[], _opts: unknown, command: Command) =>
      run(command, async (ctx) => {
        const client = await namespacesClient(ctx);
        // one Update per label with mask `labels.<key>`, as containerd's client SetLabel does
        for (const [key, value] of Object.entries(parseLabelArgs(labels))) {
          await client.update(
            {
              namespace: { name: requireName(name), labels: { [key]: value } },
              updateMask: { paths: [`labels.${key}`] },
            },
            ctx.callOptions(),
          );
        }
      }),
    );
}

function listCommand(run: RunCommand): Command {
  return new Command("list")
    .alias("ls")
    .description("list namespaces")
    .option("-q, --quiet", "print only the namespace names")
    .action(async (opts: { quiet?: boolean }, command: Command) =>
      run(command, async (ctx) => {
        const client = await namespacesClient(ctx);
        const { namespaces } = await client.list({}, ctx.callOptions());
        const names = namespaces.map((ns) => ns.name);
        if (opts.quiet && !ctx.options.json) {
          ctx.out.stdout(names.map((n) => `${n}\n`).join(""));
          return;
        }
        // ctr reads each namespace's labels with Get
        const rows: NamespaceRow[] = [];
        for (const name of names) {
          const res = await client.get({ name }, ctx.callOptions());
          rows.push({ name, labels: res.namespace?.labels ?? {} });
        }
        if (ctx.options.json) {
          writeJson(
            ctx.out,
            rows.map((r) => ({ name: r.name, labels: Object.fromEntries(Object.entries(r.labels).sort(byKey)) })),
          );
        } else ctx.out.stdout(formatNamespaceTable(rows));
      }),
    );
}

function removeCommand(run: RunCommand): Command {
  return new Command("remove")
    .alias("rm")
    .description("remove one or more namespaces; a namespace must be empty")
    .argument("<names...>", "namespace names")
    .action(async (names: string[], _opts: unknown, command: Command) =>
      run(command, async (ctx) => {
        const client = await namespacesClient(ctx);
        let failed = false;
        for (const name of names) {
          try {
            await client.delete({ name }, ctx.callOptions());
          } catch (err) {
            const typed = fromConnectError(err);
            if (isUnavailable(typed)) throw err; // no daemon: stop here
            // a namespace that is already gone counts as removed (ctr)
            if (!isNotFound(typed)) {
              failed = true;
              ctx.out.stderr(`berth: unable to delete ${name}: ${errorMessage(err, ctx.options.address)}\n`);
              continue;
            }
          }
          ctx.out.stdout(`${name}\n`);
        }
        if (failed) throw new ExitError(1);
      }),
    );
}

export function namespacesCommand(run: RunCommand): Command {
  return new Command("namespaces")
    .aliases(["namespace", "ns"])
    .description("manage namespaces")
    .addCommand(createCommand(run))
    .addCommand(listCommand(run))
    .addCommand(labelCommand(run))
    .addCommand(removeCommand(run));
}

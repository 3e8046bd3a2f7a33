/** `berth plugins ls`: the daemon's plugins and their status (ctr: Introspection.Plugins(filters = args)). */
import type { Plugin } from "@berth/api/services/introspection/v1";
import { Command } from "commander";
import { compareStrings, TabWriter, writeJson } from "../../output.js";
import type { RunCommand } from "../../program.js";

/** containerd's `plugin.ErrSkipPlugin` text: an init error containing it means "skipped", not "failed". */
const SKIP_PLUGIN = "skip plugin";

export type PluginStatus = "ok" | "skip" | "error";

export function pluginStatus(plugin: Pick<Plugin, "initErr">): PluginStatus {
  if (plugin.initErr === undefined) return "ok";
  return plugin.initErr.message.includes(SKIP_PLUGIN) ? "skip" : "error";
}

export interface PlatformLike {
  readonly os: string;
  readonly architecture: string;
  readonly variant: string;
}

/** containerd's `platforms.Format`: `os/arch[/variant]`, `unknown` without an OS. */
export function formatPlatform(p: PlatformLike): string {
  if (p.os === "") return "unknown";
  return [p.os, p.architecture, p.variant].filter((s) => s !== "").join("/");
}

/** Distinct formatted platforms, sorted, comma-joined (ctr's `prettyPlatforms`); `-` when there are none. */
export function formatPlatforms(platforms: readonly PlatformLike[]): string {
  if (platforms.length === 0) return "-";
  return [...new Set(platforms.map(formatPlatform))].sort(compareStrings).join(",");
}

const GRPC_CODE_NAMES = [
  "OK",
  "Canceled",
  "Unknown",
  "InvalidArgument",
  "DeadlineExceeded",
  "NotFound",
  "AlreadyExists",
  "PermissionDenied",
  "ResourceExhausted",
  "FailedPrecondition",
  "Aborted",
  "OutOfRange",
  "Unimplemented",
  "Internal",
  "Unavailable",
  "DataLoss",
  "Unauthenticated",
];

/** grpc-go's `codes.Code.String()`. */
export function grpcCodeName(code: number): string {
  return GRPC_CODE_NAMES[code] ?? `Code(${code})`;
}

/** The `TYPE ID PLATFORMS STATUS` table, laid out as ctr's `tabwriter.NewWriter(os.Stdout, 4, 8, 4, ' ', 0)`. */
export function formatPluginTable(plugins: readonly Plugin[]): string {
  const w = new TabWriter({ minWidth: 4, padding: 4 });
  w.row("TYPE", "ID", "PLATFORMS", "STATUS");
  for (const p of plugins) w.row(p.type, p.id, formatPlatforms(p.platforms), pluginStatus(p));
  return w.flush();
}

/** `--detailed`: one block per plugin, as ctr prints it (Go's `Fprintln` puts a space between operands). */
export function formatPluginDetails(plugins: readonly Plugin[]): string {
  const w = new TabWriter({ minWidth: 4, padding: 4 });
  plugins.forEach((p, i) => {
    if (i > 0) w.write("\t\t\t\n");
    w.write(`Type:\t ${p.type}\n`);
    w.write(`ID:\t ${p.id}\n`);
    if (p.requires.length > 0) {
      w.write("Requires:\t\n");
      for (const r of p.requires) w.write(`\t ${r}\n`);
    }
    if (p.platforms.length > 0) w.write(`Platforms:\t ${formatPlatforms(p.platforms)}\n`);
    const exports = Object.keys(p.exports).sort(compareStrings);
    if (exports.length > 0) {
      w.write("Exports:\t\n");
      for (const k of exports) w.write(`\t ${k} \t ${p.exports[k]}\n`);
    }
    if (p.capabilities.length > 0) w.write(`Capabilities:\t ${p.capabilities.join(",")}\n`);
    if (p.initErr !== undefined) {
      w.write("Error:\t\n");
      w.write(`\t Code:\t ${grpcCodeName(p.initErr.code)}\n`);
      w.write(`\t Message:\t ${p.initErr.message}\n`);
    }
  });
  return w.flush();
}

/** The `--json` form of one plugin. */
export function pluginJson(p: Plugin) {
  return {
    type: p.type,
    id: p.id,
    requires: p.requires,
    platforms: p.platforms.map((x) => ({ os: x.os, architecture: x.architecture, variant: x.variant })),
    exports: p.exports,
    capabilities: p.capabilities,
    status: pluginStatus(p),
    ...(p.initErr ? { init_err: { code: grpcCodeName(p.initErr.code), message: p.initErr.message } } : {}),
  };
}

function listCommand(run: RunCommand): Command {
  return new Command("list")
    .alias("ls")
    .description("list the daemon's plugins")
    .argument("[filters...]", 'filters, e.g. type==io.containerd.snapshotter.v1 or "id~=^over"')
    .option("-q, --quiet", "print only the plugin ids")
    .option("-d, --detailed", "print detailed information about each plugin")
    .action(async (filters: string[], opts: { quiet?: boolean; detailed?: boolean }, command: Command) =>
      run(command, async (ctx) => {
        const { Introspection } = await import("@berth/api/services/introspection/v1");
        const res = await ctx.client(Introspection).plugins({ filters }, ctx.callOptions());
        if (ctx.options.json) {
          writeJson(ctx.out, res.plugins.map(pluginJson));
        } else if (opts.quiet) {
          ctx.out.stdout(res.plugins.map((p) => `${p.id}\n`).join(""));
        } else if (opts.detailed) {
          ctx.out.stdout(formatPluginDetails(res.plugins));
        } else {
          ctx.out.stdout(formatPluginTable(res.plugins));
        }
      }),
    );
}

export function pluginsCommand(run: RunCommand): Command {
  return new Command("plugins")
    .alias("plugin")
    .description("provides information about the daemon's plugins")
    .addCommand(listCommand(run));
}

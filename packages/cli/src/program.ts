/** The `berth` program: global options, the command tree, and running it to an exit status. */
import { readFileSync } from "node:fs";
import { Command, CommanderError, Option } from "commander";
import { contentCommand } from "./commands/content/index.js";
import { eventsCommand } from "./commands/events/index.js";
import { imagesCommand } from "./commands/images/index.js";
import { leasesCommand } from "./commands/leases/index.js";
import { namespacesCommand } from "./commands/namespaces/index.js";
import { pluginsCommand } from "./commands/plugins/index.js";
import { versionCommand } from "./commands/version/index.js";
import { DEFAULT_ADDRESS, DEFAULT_NAMESPACE } from "./config.js";
import {
  type ClientInfo,
  type CliDeps,
  type CommandContext,
  CommandSession,
  ExitError,
  globalFlagsOf,
} from "./context.js";
import { errorMessage } from "./errors.js";

/** Runs a command body with a fresh session; failures are printed as `berth: <message>` and end with status 1. */
export type RunCommand = (command: Command, body: (ctx: CommandContext) => Promise<void>) => Promise<void>;

/** This package's version, read from package.json next to `src/` and `dist/`. */
export function defaultClientInfo(): ClientInfo {
  let version = "unknown";
  try {
    const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version?: string };
    version = pkg.version ?? version;
  } catch {
    // running from an unusual layout: keep "unknown"
  }
  return { version, revision: "unknown", nodeVersion: process.version };
}

export function createProgram(deps: CliDeps): Command {
  const clientInfo = deps.clientInfo ?? defaultClientInfo();

  const run: RunCommand = async (command, body) => {
    let session: CommandSession | undefined;
    try {
      session = new CommandSession(deps, globalFlagsOf(command), clientInfo);
      await body(session);
    } catch (err) {
      if (err instanceof ExitError) throw err;
      deps.out.stderr(`berth: ${errorMessage(err, session?.options.address)}\n`);
      if (session?.options.debug && err instanceof Error && err.stack) deps.out.stderr(`${err.stack}\n`);
      throw new ExitError(1);
    } finally {
      session?.close();
    }
  };

  const program = new Command("berth")
    .description("berth: a command line client for containerd-compatible daemons (berthd, containerd)")
    .addOption(
      new Option(
        "-a, --address <path>",
        `address of the daemon's unix socket (env BERTH_ADDRESS, CONTAINERD_ADDRESS; default ${DEFAULT_ADDRESS})`,
      ),
    )
    .addOption(
      new Option(
        "-n, --namespace <name>",
        `namespace to use (env BERTH_NAMESPACE, CONTAINERD_NAMESPACE; default ${DEFAULT_NAMESPACE})`,
      ),
    )
    .addOption(new Option("--timeout <duration>", "total timeout for the command, e.g. 10s, 500ms (default: none)"))
    .option("--json", "print machine-readable JSON")
    .option("--debug", "trace calls and print stack traces on stderr")
    .showSuggestionAfterError()
    .addCommand(versionCommand(run))
    .addCommand(pluginsCommand(run))
    .addCommand(namespacesCommand(run))
    .addCommand(eventsCommand(run))
    .addCommand(contentCommand(run))
    .addCommand(leasesCommand(run))
    .addCommand(imagesCommand(run));

  configureTree(program, deps);
  return program;
}

/** commander's inherited settings reach only `.command()` children; apply ours to the whole tree. */
function configureTree(command: Command, deps: CliDeps): void {
  command.exitOverride().configureOutput({ writeOut: (s) => deps.out.stdout(s), writeErr: (s) => deps.out.stderr(s) });
  for (const sub of command.commands) configureTree(sub, deps);
}

/** Parses `argv` (user arguments only, without `node` and the script) and runs the command; resolves to the exit status. */
export async function runCli(argv: readonly string[], deps: CliDeps): Promise<number> {
  const program = createProgram(deps);
  try {
    await program.parseAsync([...argv], { from: "user" });
    return 0;
  } catch (err) {
    if (err instanceof ExitError) return err.exitCode;
    if (err instanceof CommanderError) {
      // help and version displays are exit code 0; usage errors were already printed by commander
      return err.exitCode === 0 ? 0 : 1;
    }
    deps.out.stderr(`berth: ${errorMessage(err)}\n`);
    return 1;
  }
}

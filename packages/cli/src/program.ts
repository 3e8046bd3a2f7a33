/** The `berth` program: global options, the command tree, and running it to an exit status. */
import { readFileSync } from "node:fs";
import { Command, CommanderError, Option, type ParseOptionsResult } from "commander";
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

/** One top-level command: the names it answers to, and its module, imported only when it is needed. */
interface CommandModule {
  readonly names: readonly string[];
  load(run: RunCommand): Promise<Command>;
}

/**
 * The top-level commands in help order. Each is its own module (and bundle chunk): a run of berth imports only
 * the command it was asked for, or all of them when it must show the whole tree (help, an unknown name).
 * The names must match each command's name and aliases (test/lazy-program.test.ts checks them).
 */
export const COMMAND_MODULES: readonly CommandModule[] = [
  { names: ["version"], load: async (run) => (await import("./commands/version/index.js")).versionCommand(run) },
  {
    names: ["plugins", "plugin"],
    load: async (run) => (await import("./commands/plugins/index.js")).pluginsCommand(run),
  },
  {
    names: ["namespaces", "namespace", "ns"],
    load: async (run) => (await import("./commands/namespaces/index.js")).namespacesCommand(run),
  },
  { names: ["events", "event"], load: async (run) => (await import("./commands/events/index.js")).eventsCommand(run) },
  { names: ["content"], load: async (run) => (await import("./commands/content/index.js")).contentCommand(run) },
  { names: ["leases"], load: async (run) => (await import("./commands/leases/index.js")).leasesCommand(run) },
  {
    names: ["images", "image", "i"],
    load: async (run) => (await import("./commands/images/index.js")).imagesCommand(run),
  },
  { names: ["run"], load: async (run) => (await import("./commands/run/index.js")).runCommand(run) },
  {
    names: ["containers", "c", "container"],
    load: async (run) => (await import("./commands/containers/index.js")).containersCommand(run),
  },
  {
    names: ["tasks", "t", "task"],
    load: async (run) => (await import("./commands/tasks/index.js")).tasksCommand(run),
  },
  {
    names: ["snapshots", "snapshot"],
    load: async (run) => (await import("./commands/snapshots/index.js")).snapshotsCommand(run),
  },
];

/** Global options that take a value; `commandNameOf` skips their values. */
const VALUE_OPTIONS = new Set(["-a", "--address", "-n", "--namespace", "--timeout"]);
const FLAG_OPTIONS = new Set(["--json", "--debug"]);

/**
 * The top-level command `argv` invokes, found the way commander will find it (global options first), or
 * undefined when that is not certain (help, an unknown option or name): then the whole tree is loaded.
 */
export function commandModuleOf(argv: readonly string[]): CommandModule | undefined {
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (VALUE_OPTIONS.has(arg)) {
      i++;
      continue;
    }
    if (FLAG_OPTIONS.has(arg) || arg.startsWith("--address=") || arg.startsWith("--namespace=")) continue;
    if (arg.startsWith("--timeout=") || /^-[an]./.test(arg)) continue;
    if (arg.startsWith("-")) return undefined;
    return COMMAND_MODULES.find((m) => m.names.includes(arg));
  }
  return undefined;
}

/**
 * The root command. Global options are read wherever they appear (`berth tasks ls --json`), except after the
 * invoked command's name when that command has an option of the same name: in `berth tasks kill -a ID` the
 * `-a` is kill's `--all`, as with ctr, while `berth -a SOCK tasks kill ID` still sets the address.
 */
class BerthProgram extends Command {
  override parseOptions(argv: string[]): ParseOptionsResult {
    const leaf = leafOf(this, argv);
    if (leaf === undefined) return super.parseOptions(argv);
    const own = new Set(leaf.command.options.flatMap((o) => [o.short, o.long]).filter((f) => f !== undefined));
    const shadowed = this.options.filter((o) => (o.short && own.has(o.short)) || (o.long && own.has(o.long)));
    if (shadowed.length === 0) return super.parseOptions(argv);
    const head = super.parseOptions(argv.slice(0, leaf.end));
    // commander keeps a command's options in a public array; hide the shadowed ones while parsing the tail
    const options = this.options as Option[];
    const saved = [...options];
    options.splice(0, options.length, ...saved.filter((o) => !shadowed.includes(o)));
    try {
      const tail = super.parseOptions(argv.slice(leaf.end));
      return { operands: [...head.operands, ...tail.operands], unknown: [...head.unknown, ...tail.unknown] };
    } finally {
      options.splice(0, options.length, ...saved);
    }
  }
}

/** The leaf command `argv` invokes and the index just after its name, when the arguments name one plainly. */
function leafOf(root: Command, argv: readonly string[]): { command: Command; end: number } | undefined {
  let command = root;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === "--") return undefined;
    if (arg.length > 1 && arg.startsWith("-")) {
      const name = arg.startsWith("--") ? arg.split("=")[0] : arg.slice(0, 2);
      const option = [...root.options, ...command.options].find((o) => o.long === name || o.short === name);
      if (option === undefined) return undefined;
      const inline = arg.includes("=") || (!arg.startsWith("--") && arg.length > 2);
      if ((option.required || option.optional) && !inline) i++;
      continue;
    }
    const sub = command.commands.find((c) => c.name() === arg || c.aliases().includes(arg));
    if (sub === undefined) return undefined;
    if (sub.commands.length === 0) return { command: sub, end: i + 1 };
    command = sub;
  }
  return undefined;
}

/**
 * The program with the command tree. With `argv`, only the command it invokes is loaded (when that is plain);
 * without, the whole tree.
 */
export async function createProgram(deps: CliDeps, argv?: readonly string[]): Promise<Command> {
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

  const program = new BerthProgram("berth")
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
    .showSuggestionAfterError();

  const invoked = argv === undefined ? undefined : commandModuleOf(argv);
  const modules = invoked === undefined ? COMMAND_MODULES : [invoked];
  for (const command of await Promise.all(modules.map((m) => m.load(run)))) program.addCommand(command);

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
  const program = await createProgram(deps, argv);
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

import { existsSync } from "node:fs";
import { Command, Option } from "commander";
import type { AnyRegistration } from "@berth/plugin";
import { builtinPlugins } from "../builtins.js";
import { type DaemonConfig, configToToml, defaultConfig, loadConfig } from "../config/config.js";
import { startDaemon } from "../daemon.js";
import { createLogger } from "../log.js";
import { VERSION } from "../version.js";

const DEFAULT_CONFIG_PATH = "/etc/berth/config.toml";

interface GlobalOptions {
  config?: string;
  root?: string;
  state?: string;
  address?: string;
  logLevel?: string;
}

async function resolveConfig(opts: GlobalOptions): Promise<DaemonConfig> {
  // The default path is optional: without it berthd runs on its embedded defaults.
  const path = opts.config ?? (existsSync(DEFAULT_CONFIG_PATH) ? DEFAULT_CONFIG_PATH : undefined);
  const config = await loadConfig(path);
  if (opts.root) config.root = opts.root;
  if (opts.state) config.state = opts.state;
  if (opts.address) config.grpc.address = opts.address;
  if (opts.logLevel) config.debug.level = opts.logLevel;
  return config;
}

function pluginDefaults(plugins: readonly AnyRegistration[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const p of plugins) {
    if (p.config) out[`${p.type.name}.${p.id}`] = p.config.toToml?.(p.config.defaults) ?? p.config.defaults;
  }
  return out;
}

async function serve(opts: GlobalOptions): Promise<void> {
  const config = await resolveConfig(opts);
  const log = createLogger(config.debug.level);
  const daemon = await startDaemon({ config, plugins: builtinPlugins, log });
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) {
      log.warn({ signal }, "second signal: exiting now");
      process.exit(1);
    }
    stopping = true;
    log.info({ signal }, "stopping");
    daemon.close().then(
      () => process.exit(0),
      (err) => {
        log.error({ err }, "shutdown failed");
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
}

const program = new Command("berthd")
  .description("Berth: a containerd-compatible container daemon")
  .version(VERSION, "-v, --version")
  .option("-c, --config <path>", `path to the configuration file (default ${DEFAULT_CONFIG_PATH} if present)`)
  .option("--root <dir>", "root directory for persistent data")
  .option("--state <dir>", "state directory for volatile data")
  .option("-a, --address <path>", "address of the gRPC socket")
  .addOption(
    new Option("-l, --log-level <level>", "log level").choices([
      "trace",
      "debug",
      "info",
      "warn",
      "warning",
      "error",
      "fatal",
      "panic",
    ]),
  )
  .action(async () => serve(program.opts<GlobalOptions>()));

const configCommand = program.command("config").description("information on the berthd config");
configCommand
  .command("default")
  .description("print the default config")
  .action(() => {
    process.stdout.write(configToToml(defaultConfig(), pluginDefaults(builtinPlugins)));
  });
configCommand
  .command("dump")
  .description("print the config as berthd reads it (file, flags and defaults merged)")
  .action(async () => {
    const config = await resolveConfig(program.opts<GlobalOptions>());
    process.stdout.write(configToToml(config, pluginDefaults(builtinPlugins)));
  });

program.parseAsync(process.argv).catch((err: unknown) => {
  process.stderr.write(`berthd: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});

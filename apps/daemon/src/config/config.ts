import { readFile } from "node:fs/promises";
import { InvalidArgumentError, NotFoundError, isNotFound } from "@berth/errdefs";
import { parse as parseToml, stringify as stringifyToml } from "smol-toml";

export const DEFAULT_ROOT = "/var/lib/berth";
export const DEFAULT_STATE = "/run/berth";
export const DEFAULT_ADDRESS = "/run/berth/berth.sock";
/** containerd's default message size limits (16 MiB). */
export const DEFAULT_MAX_MESSAGE_SIZE = 16 << 20;

export interface SocketConfig {
  address: string;
  uid: number;
  gid: number;
}

export interface GrpcConfig extends SocketConfig {
  maxRecvMessageSize: number;
  maxSendMessageSize: number;
}

export interface ProxyPluginConfig {
  type: string;
  address: string;
  platform?: string;
}

/** containerd's config.toml, version 2, as far as Berth reads it. */
export interface DaemonConfig {
  version: number;
  root: string;
  state: string;
  grpc: GrpcConfig;
  ttrpc: SocketConfig;
  debug: { address: string; uid: number; gid: number; level: string; format: string };
  metrics: { address: string; grpcHistogram: boolean };
  disabledPlugins: string[];
  requiredPlugins: string[];
  /** Raw plugin tables by URI, parsed by each plugin's own config spec. */
  plugins: Record<string, unknown>;
  proxyPlugins: Record<string, ProxyPluginConfig>;
}

export function defaultConfig(): DaemonConfig {
  return {
    version: 2,
    root: DEFAULT_ROOT,
    state: DEFAULT_STATE,
    grpc: {
      address: DEFAULT_ADDRESS,
      uid: 0,
      gid: 0,
      maxRecvMessageSize: DEFAULT_MAX_MESSAGE_SIZE,
      maxSendMessageSize: DEFAULT_MAX_MESSAGE_SIZE,
    },
    ttrpc: { address: "", uid: 0, gid: 0 },
    debug: { address: "", uid: 0, gid: 0, level: "info", format: "" },
    metrics: { address: "", grpcHistogram: false },
    disabledPlugins: [],
    requiredPlugins: [],
    plugins: {},
    proxyPlugins: {},
  };
}

type Table = Record<string, unknown>;

const isTable = (v: unknown): v is Table => typeof v === "object" && v !== null && !Array.isArray(v);

function pick<T>(table: Table, key: string, kind: "string" | "number" | "boolean", fallback: T, where: string): T {
  const v = table[key];
  if (v === undefined) return fallback;
  if (kind === "number" && typeof v === "bigint") return Number(v) as T;
  if (typeof v !== kind) throw new InvalidArgumentError(`config: ${where}${key} must be a ${kind}`);
  return v as T;
}

function stringList(table: Table, key: string): string[] {
  const v = table[key];
  if (v === undefined) return [];
  if (!Array.isArray(v) || v.some((x) => typeof x !== "string")) {
    throw new InvalidArgumentError(`config: ${key} must be a list of strings`);
  }
  return v as string[];
}

/** Reads a parsed TOML document over the defaults. Unknown top-level keys are ignored, as containerd does. */
export function configFromToml(doc: Table): DaemonConfig {
  const cfg = defaultConfig();
  const version = pick<number>(doc, "version", "number", 1, "");
  if (version !== 2) {
    throw new InvalidArgumentError(`config: version ${version} is not supported (write version = 2)`);
  }
  cfg.root = pick(doc, "root", "string", cfg.root, "");
  cfg.state = pick(doc, "state", "string", cfg.state, "");
  const section = (name: string): Table => {
    const v = doc[name];
    if (v === undefined) return {};
    if (!isTable(v)) throw new InvalidArgumentError(`config: [${name}] must be a table`);
    return v;
  };
  const grpc = section("grpc");
  cfg.grpc.address = pick(grpc, "address", "string", cfg.grpc.address, "grpc.");
  cfg.grpc.uid = pick(grpc, "uid", "number", 0, "grpc.");
  cfg.grpc.gid = pick(grpc, "gid", "number", 0, "grpc.");
  cfg.grpc.maxRecvMessageSize = pick(grpc, "max_recv_message_size", "number", cfg.grpc.maxRecvMessageSize, "grpc.");
  cfg.grpc.maxSendMessageSize = pick(grpc, "max_send_message_size", "number", cfg.grpc.maxSendMessageSize, "grpc.");
  const ttrpc = section("ttrpc");
  cfg.ttrpc.address = pick(ttrpc, "address", "string", "", "ttrpc.");
  cfg.ttrpc.uid = pick(ttrpc, "uid", "number", 0, "ttrpc.");
  cfg.ttrpc.gid = pick(ttrpc, "gid", "number", 0, "ttrpc.");
  const debug = section("debug");
  cfg.debug.address = pick(debug, "address", "string", "", "debug.");
  cfg.debug.uid = pick(debug, "uid", "number", 0, "debug.");
  cfg.debug.gid = pick(debug, "gid", "number", 0, "debug.");
  cfg.debug.level = pick(debug, "level", "string", cfg.debug.level, "debug.");
  cfg.debug.format = pick(debug, "format", "string", "", "debug.");
  const metrics = section("metrics");
  cfg.metrics.address = pick(metrics, "address", "string", "", "metrics.");
  cfg.metrics.grpcHistogram = pick(metrics, "grpc_histogram", "boolean", false, "metrics.");
  cfg.disabledPlugins = stringList(doc, "disabled_plugins");
  cfg.requiredPlugins = stringList(doc, "required_plugins");
  cfg.plugins = section("plugins");
  for (const [name, raw] of Object.entries(section("proxy_plugins"))) {
    if (!isTable(raw)) throw new InvalidArgumentError(`config: [proxy_plugins.${name}] must be a table`);
    const type = pick(raw, "type", "string", "", `proxy_plugins.${name}.`);
    const address = pick(raw, "address", "string", "", `proxy_plugins.${name}.`);
    if (!type || !address) throw new InvalidArgumentError(`config: proxy plugin ${name} needs type and address`);
    cfg.proxyPlugins[name] = { type, address, platform: pick(raw, "platform", "string", undefined, "") };
  }
  return cfg;
}

/** Loads a config file; a missing file at the default path is not an error (the embedded defaults apply). */
export async function loadConfig(path: string | undefined): Promise<DaemonConfig> {
  if (path === undefined) return defaultConfig();
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    if (isNotFound(err)) throw new NotFoundError(`config file ${path}`, { cause: err });
    throw err;
  }
  let doc: Table;
  try {
    doc = parseToml(text) as Table;
  } catch (err) {
    throw new InvalidArgumentError(`config ${path}: ${(err as Error).message}`, { cause: err });
  }
  return configFromToml(doc);
}

/** The config as TOML, with each plugin's defaults filled in (`berthd config default`). */
export function configToToml(cfg: DaemonConfig, pluginDefaults: Record<string, unknown>): string {
  const doc: Table = {
    version: cfg.version,
    root: cfg.root,
    state: cfg.state,
    disabled_plugins: cfg.disabledPlugins,
    required_plugins: cfg.requiredPlugins,
    grpc: {
      address: cfg.grpc.address,
      uid: cfg.grpc.uid,
      gid: cfg.grpc.gid,
      max_recv_message_size: cfg.grpc.maxRecvMessageSize,
      max_send_message_size: cfg.grpc.maxSendMessageSize,
    },
    ttrpc: { address: cfg.ttrpc.address, uid: cfg.ttrpc.uid, gid: cfg.ttrpc.gid },
    debug: {
      address: cfg.debug.address,
      uid: cfg.debug.uid,
      gid: cfg.debug.gid,
      level: cfg.debug.level,
      format: cfg.debug.format,
    },
    metrics: { address: cfg.metrics.address, grpc_histogram: cfg.metrics.grpcHistogram },
    plugins: { ...pluginDefaults, ...cfg.plugins },
    proxy_plugins: cfg.proxyPlugins,
  };
  return stringifyToml(doc);
}

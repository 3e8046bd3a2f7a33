/** A structural logger: what libraries receive (the daemon passes a pino child). */
export interface Logger {
  debug(obj: object | string, msg?: string): void;
  info(obj: object | string, msg?: string): void;
  warn(obj: object | string, msg?: string): void;
  error(obj: object | string, msg?: string): void;
  child?(bindings: Record<string, unknown>): Logger;
}

export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };

/** A typed plugin type token, e.g. `io.containerd.snapshotter.v1`. `__instance` is a phantom. */
export interface PluginType<T> {
  readonly name: string;
  readonly __instance?: T;
}

export const pluginType = <T>(name: string): PluginType<T> => ({ name });

export interface PluginConfigSpec<C> {
  readonly defaults: C;
  /** Parses the raw TOML table (merged over nothing); throws InvalidArgument on bad input. */
  parse(raw: unknown): C;
  /** The config as its TOML table (containerd's keys), for `berthd config default`; default: `defaults` as is. */
  toToml?(config: C): Record<string, unknown>;
}

export interface PluginPlatform {
  readonly os: string;
  readonly architecture: string;
  readonly variant?: string;
}

export interface PluginMeta {
  readonly exports: Record<string, string>;
  readonly capabilities: string[];
  readonly platforms: PluginPlatform[];
}

export interface InitContext<C> {
  readonly id: string;
  readonly uri: string;
  readonly config: C;
  /** `<root>/<uri>`: persistent. Created on demand by the plugin. */
  readonly rootDir: string;
  /** `<state>/<uri>`: volatile. */
  readonly stateDir: string;
  /** The daemon's own root/state and addresses, for plugins that need them (runtime, introspection). */
  readonly daemon: DaemonInfo;
  readonly log: Logger;
  readonly signal: AbortSignal;
  readonly meta: PluginMeta;
  /** The one loaded instance of a required type; NotFound if none, FailedPrecondition if several. */
  getSingle<T>(type: PluginType<T>): T;
  getById<T>(type: PluginType<T>, id: string): T;
  /** Every loaded instance of a required type by id (skipped and failed plugins left out). */
  getByType<T>(type: PluginType<T>): ReadonlyMap<string, T>;
  /** Every plugin's state so far (introspection needs all of them). */
  plugins(): ReadonlyArray<PluginStatus>;
}

export interface DaemonInfo {
  readonly root: string;
  readonly state: string;
  readonly address: string;
  readonly ttrpcAddress: string;
  readonly version: string;
  readonly revision: string;
}

export interface Registration<T = unknown, C = unknown> {
  readonly type: PluginType<T>;
  /** kebab-case id: "native", "overlayfs". */
  readonly id: string;
  readonly requires?: ReadonlyArray<PluginType<unknown>> | "*";
  readonly config?: PluginConfigSpec<C>;
  init(ic: InitContext<C>): T | Promise<T>;
}

export const definePlugin = <T, C = undefined>(registration: Registration<T, C>): Registration<T, C> => registration;

export const pluginUri = (r: { type: PluginType<unknown>; id: string }): string => `${r.type.name}.${r.id}`;

/** Thrown from init when a plugin cannot run in this environment and should be listed as skipped. */
export class SkipPluginError extends Error {
  constructor(reason: string) {
    super(`skip plugin: ${reason}`);
    this.name = "SkipPluginError";
  }
}

export const isSkipPlugin = (err: unknown): boolean =>
  err instanceof SkipPluginError || (err instanceof Error && err.message.includes("skip plugin"));

export type PluginState = "ok" | "skipped" | "error" | "disabled";

export interface PluginStatus {
  readonly type: string;
  readonly id: string;
  readonly requires: readonly string[];
  readonly state: PluginState;
  readonly meta: PluginMeta;
  readonly error?: Error;
}

/** Instances may implement close(); the loader calls it in reverse init order at shutdown. */
export interface Closable {
  close(): Promise<void> | void;
}

/** Any registration, whatever its instance and config types (registries hold mixed lists). */
export type AnyRegistration = Registration<unknown, unknown>;

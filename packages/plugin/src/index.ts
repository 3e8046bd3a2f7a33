export { pluginType, definePlugin, pluginUri, SkipPluginError, isSkipPlugin, silentLogger } from "./plugin.js";
export type {
  Logger,
  PluginType,
  PluginConfigSpec,
  PluginPlatform,
  PluginMeta,
  InitContext,
  DaemonInfo,
  Registration,
  AnyRegistration,
  PluginState,
  PluginStatus,
  Closable,
} from "./plugin.js";
export { Registry } from "./registry.js";
export { loadPlugins, LoadedPlugins } from "./loader.js";
export type { LoadOptions } from "./loader.js";
export { GrpcServicePlugin } from "./grpc.js";
export type { GrpcService, GrpcServiceLoader } from "./grpc.js";

export { startDaemon } from "./daemon.js";
export type { Daemon, DaemonOptions } from "./daemon.js";
export { builtinPlugins } from "./builtins.js";
export {
  configFromToml,
  configToToml,
  defaultConfig,
  loadConfig,
  DEFAULT_ADDRESS,
  DEFAULT_ROOT,
  DEFAULT_STATE,
} from "./config/config.js";
export type { DaemonConfig, GrpcConfig, ProxyPluginConfig, SocketConfig } from "./config/config.js";
export { TtrpcServicePlugin, eventsTtrpcPlugin } from "./services/ttrpc-events.js";
export type { TtrpcService } from "./services/ttrpc-events.js";
export { versionGrpcPlugin } from "./services/version.js";
export { introspectionGrpcPlugin } from "./services/introspection.js";
export { healthGrpcPlugin } from "./services/health.js";
export { createLogger } from "./log.js";
export { VERSION } from "./version.js";
export { proxyPluginRegistrations } from "./proxy-plugins.js";

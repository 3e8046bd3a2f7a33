// @berth/runtime-v2: the runtime v2 shim manager (start, delete, reconnect) and its plugin registrations.
// The Tasks gRPC service is under "@berth/runtime-v2/service".

export { ShimManager, ShimTask } from "./manager.js";
export type {
  CreateTaskOptions,
  PackedValue,
  ProcessIO,
  RootfsMount,
  RuntimeMapping,
  ShimManagerOptions,
  TaskExitInfo,
} from "./manager.js";
export { shimBinaryName, resolveShimBinary, startShimBinary, deleteShimBinary } from "./binary.js";
export type { ShimExit, ShimLaunchConfig } from "./binary.js";
export { createBundle, loadBundle, deleteBundle, BUNDLE_FILES } from "./bundle.js";
export type { Bundle } from "./bundle.js";
export { connectShim } from "./shim-client.js";
export type { ShimConnection, ShimTaskClient } from "./shim-client.js";
export {
  RuntimePlugin,
  TasksServicePlugin,
  taskRuntimePlugin,
  tasksServicePlugin,
  tasksGrpcPlugin,
  parseRuntimeConfig,
} from "./plugin.js";
export type { RuntimeConfig } from "./plugin.js";

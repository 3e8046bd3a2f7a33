export { GarbageCollector } from "./collector.js";
export type { GarbageCollectorOptions } from "./collector.js";
export { GcScheduler, DEFAULT_GC_SCHEDULER_OPTIONS } from "./scheduler.js";
export type { Collector, GcSchedulerOptions, GcSchedulerStats } from "./scheduler.js";
export { GcLock } from "./lock.js";
export {
  LABEL_GC_ROOT,
  LABEL_GC_REF_CONTENT,
  LABEL_GC_REF_SNAPSHOT,
  labelReferences,
  leaseRootSource,
  contentRootSource,
  contentResourceKind,
  ingestResourceKind,
} from "./builtin.js";
export type { GcContext, GcNode, GcResourceKind, GcRoot, GcRootSource, GcStats } from "./types.js";
export {
  GcPlugin,
  formatGoDuration,
  gcSchedulerConfigToToml,
  gcSchedulerPlugin,
  parseGcSchedulerConfig,
  parseGoDuration,
} from "./plugin.js";
export type { GcSchedulerConfig } from "./plugin.js";

export { MetadataDb, MetadataPlugin, METADATA_FILE, openMetadataDb } from "./metadata.js";
export type { MetadataChange } from "./metadata.js";
export { NamespaceStore } from "./namespaces.js";
export type { Namespace, NamespaceContentProbe } from "./namespaces.js";
export { openDatabase } from "./db.js";
export type { SqliteDatabase, OpenOptions } from "./db.js";
export { metadataPlugin } from "./plugin.js";
export { createNamespacedContentStore, registerContentProbe, DEFAULT_INGEST_EXPIRY_MS } from "./content.js";
export type { NamespacedContentOptions } from "./content.js";
export {
  createNamespacedSnapshotter,
  collectSnapshotterBackend,
  inheritedSnapshotLabels,
  registerSnapshotProbe,
  snapshotResourceKind,
  snapshotResourceType,
  snapshotRootSource,
  LABEL_SNAPSHOT_REF,
} from "./snapshots.js";
export { ContainerStore, containerRootSource, registerContainerProbe, validateContainer } from "./containers.js";
export type { AnyValue, ContainerInput, ContainerRecord, ContainerRuntime, ContainerStoreHooks } from "./containers.js";
export { ImageStore, imageRootSource, registerImageProbe, validateImage } from "./images.js";
export type { ImageInput, ImageRecord, ImageStoreHooks, ImageTarget } from "./images.js";
export {
  LeaseStore,
  LABEL_GC_EXPIRE,
  LABEL_GC_FLAT,
  generateLeaseId,
  leaseExpiry,
  validateLeaseResource,
} from "./leases.js";
export type { Lease, LeaseResource, CreateLeaseOptions, LeaseStoreHooks } from "./leases.js";
export {
  GarbageCollector,
  GcScheduler,
  DEFAULT_GC_SCHEDULER_OPTIONS,
  GcLock,
  GcPlugin,
  gcSchedulerPlugin,
  parseGcSchedulerConfig,
  parseGoDuration,
  formatGoDuration,
  gcSchedulerConfigToToml,
  LABEL_GC_ROOT,
  LABEL_GC_REF_CONTENT,
  LABEL_GC_REF_SNAPSHOT,
  labelReferences,
  leaseRootSource,
  contentRootSource,
  contentResourceKind,
  ingestResourceKind,
} from "./gc/index.js";
export type {
  GarbageCollectorOptions,
  Collector,
  GcSchedulerOptions,
  GcSchedulerStats,
  GcSchedulerConfig,
  GcContext,
  GcNode,
  GcResourceKind,
  GcRoot,
  GcRootSource,
  GcStats,
} from "./gc/index.js";

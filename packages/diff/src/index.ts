// @berth/diff: safe, streaming layer apply (containerd's pkg/archive Apply and core/diff apply), layer
// creation between two directories, and the differ interfaces. The walking differ is under "./walking", the
// Diff gRPC service under "./service", its client under "./proxy", plugin registrations under "./plugin".
export { WHITEOUT_OPAQUE, WHITEOUT_PREFIX, applyLayer } from "./apply.js";
export type { ApplyOptions, ApplyResult, Logger } from "./apply.js";
export { compressionOfMediaType, detectCompression, zstdBinaryAvailable } from "./compression.js";
export type { Compression } from "./compression.js";
export { diffDirs } from "./diff.js";
export { applyLayerInWorker, workerApplyAvailable } from "./worker-apply.js";
export type { DiffOptions, DiffResult, DiffStream } from "./diff.js";
export { DiffPlugin, LABEL_UNCOMPRESSED, MEDIA_TYPE_LAYER, MEDIA_TYPE_LAYER_GZIP } from "./differ.js";
export type {
  Applier,
  ApplyConfig,
  Comparer,
  CompareOptions,
  Ctx,
  Differ,
  LayerDescriptor,
  ProcessorPayload,
} from "./differ.js";

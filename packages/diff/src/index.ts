// @berth/diff: safe, streaming layer apply (containerd's pkg/archive Apply and core/diff apply) and layer
// creation between two directories.
export { WHITEOUT_OPAQUE, WHITEOUT_PREFIX, applyLayer } from "./apply.js";
export type { ApplyOptions, ApplyResult, Logger } from "./apply.js";
export { compressionOfMediaType, detectCompression, zstdBinaryAvailable } from "./compression.js";
export type { Compression } from "./compression.js";
export { diffDirs } from "./diff.js";
export type { DiffOptions, DiffResult, DiffStream } from "./diff.js";

// Unpacking images into snapshotters (containerd's client Unpack and rootfs.ApplyLayers).
export {
  LabelGCRefSnapshotPrefix,
  LabelSnapshotRef,
  applyLayer,
  applyLayers,
  imageLayers,
  unpackImage,
  unpackKey,
  withLease,
} from "./unpack.js";
export type {
  LayerEvent,
  UnpackDeps,
  UnpackLayer,
  UnpackLeaseManager,
  UnpackOptions,
  UnpackResult,
} from "./unpack.js";
export { createOverlappedUnpacker } from "./overlapped.js";
export type { OverlappedUnpackOptions, OverlappedUnpackResult, OverlappedUnpacker } from "./overlapped.js";

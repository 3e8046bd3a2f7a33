// @berth/snapshotter: containerd's Snapshotter interface, the plugin type and the mount helper.
// Implementations live under subpaths: "./overlay", "./native", "./proxy" (gRPC client), "./service"
// (gRPC service), "./testsuite" (conformance suite).
export { Kind, SnapshotPlugin, SNAPSHOT_LABEL_PREFIX, isCleaner } from "./snapshotter.js";
export type {
  Ctx,
  Info,
  InfoUpdate,
  Usage,
  Mount,
  SnapshotOptions,
  WalkFn,
  Snapshotter,
  Cleaner,
} from "./snapshotter.js";
export { mount, mountAll, unmount, unmountAll, isMounted, mountPoints, compactLowerdir } from "./mount.js";
export type { UnmountOptions } from "./mount.js";
export { overlayfsSnapshotterPlugin, nativeSnapshotterPlugin } from "./plugin.js";

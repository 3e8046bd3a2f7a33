export { createNativeSnapshotter, copyTree } from "./native.js";
export type { NativeSnapshotter, NativeSnapshotterOptions } from "./native.js";

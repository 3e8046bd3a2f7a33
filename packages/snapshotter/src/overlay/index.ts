export { createOverlaySnapshotter, checkOverlaySupport, supportsIndex } from "./overlay.js";
export type { OverlaySnapshotter, OverlaySnapshotterOptions } from "./overlay.js";

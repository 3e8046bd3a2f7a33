import { SkipPluginError, definePlugin } from "@berth/plugin";
import { createNativeSnapshotter } from "./native/native.js";
import { checkOverlaySupport, createOverlaySnapshotter } from "./overlay/overlay.js";
import { SnapshotPlugin } from "./snapshotter.js";

/** overlayfs at `<root>/io.containerd.snapshotter.v1.overlayfs` (registration only; see createOverlaySnapshotter). */
export const overlayfsSnapshotterPlugin = definePlugin({
  type: SnapshotPlugin,
  id: "overlayfs",
  async init(ic) {
    const root = ic.rootDir;
    const reason = await checkOverlaySupport(root);
    if (reason !== undefined) throw new SkipPluginError(reason);
    ic.meta.exports.root = root;
    return createOverlaySnapshotter({ root });
  },
});

/** native at `<root>/io.containerd.snapshotter.v1.native` (registration only; see createNativeSnapshotter). */
export const nativeSnapshotterPlugin = definePlugin({
  type: SnapshotPlugin,
  id: "native",
  init(ic) {
    const root = ic.rootDir;
    ic.meta.exports.root = root;
    return createNativeSnapshotter({ root });
  },
});

import { definePlugin } from "@berth/plugin";
import { MetadataPlugin, openMetadataDb } from "./metadata.js";

/**
 * Registered under containerd's id "bolt" so `[plugins."io.containerd.metadata.v1.bolt"]` in a containerd
 * config.toml addresses it; the store itself is SQLite (`meta.sqlite`), not a bolt file.
 */
export const metadataPlugin = definePlugin({
  type: MetadataPlugin,
  id: "bolt",
  init(ic) {
    const db = openMetadataDb(ic.rootDir);
    ic.meta.exports.path = db.path;
    // Blobs and snapshots on disk are shared by every namespace, as containerd's default policy.
    ic.meta.exports.policy = "shared";
    return db;
  },
});

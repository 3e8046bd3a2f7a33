import { ContentPlugin } from "@berth/content-store";
import { definePlugin } from "@berth/plugin";
import { SnapshotPlugin } from "@berth/snapshotter";
import { MetadataPlugin, openMetadataDb } from "./metadata.js";

/**
 * Registered under containerd's id "bolt" so `[plugins."io.containerd.metadata.v1.bolt"]` in a containerd
 * config.toml addresses it; the store itself is SQLite (`meta.sqlite`), not a bolt file. When a content
 * plugin is loaded, the namespaced content store is put over it (`MetadataDb.content`); every snapshotter
 * plugin gets a namespaced snapshotter (`MetadataDb.snapshotters`).
 */
export const metadataPlugin = definePlugin({
  type: MetadataPlugin,
  id: "bolt",
  requires: [ContentPlugin, SnapshotPlugin],
  init(ic) {
    const db = openMetadataDb(ic.rootDir);
    ic.meta.exports.path = db.path;
    // Blobs and snapshots on disk are shared by every namespace, as containerd's default policy.
    ic.meta.exports.policy = "shared";
    const backends = ic.getByType(ContentPlugin);
    const backend = backends.get("content") ?? backends.values().next().value;
    if (backend !== undefined) db.attachContent(backend);
    // Every loaded snapshotter (built-in or proxy) gets a namespaced snapshotter under its id.
    for (const [name, sn] of ic.getByType(SnapshotPlugin)) db.attachSnapshotter(name, sn);
    return db;
  },
});

export { MetadataDb, MetadataPlugin, METADATA_FILE, openMetadataDb } from "./metadata.js";
export { NamespaceStore } from "./namespaces.js";
export type { Namespace, NamespaceContentProbe } from "./namespaces.js";
export { openDatabase } from "./db.js";
export type { SqliteDatabase, OpenOptions } from "./db.js";
export { metadataPlugin } from "./plugin.js";

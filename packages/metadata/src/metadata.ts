import { join } from "node:path";
import { pluginType } from "@berth/plugin";
import { type SqliteDatabase, openDatabase } from "./db.js";
import { NamespaceStore } from "./namespaces.js";

/**
 * The metadata database: namespaced records of every object kind (containerd's `metadata.DB`). Content and
 * snapshot backends are shared; which namespace sees what is recorded here.
 */
export class MetadataDb {
  readonly db: SqliteDatabase;
  readonly path: string;
  readonly namespaces: NamespaceStore;

  constructor(path: string) {
    this.path = path;
    this.db = openDatabase({ path });
    this.namespaces = new NamespaceStore(this.db);
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}

export const METADATA_FILE = "meta.sqlite";

export function openMetadataDb(dir: string): MetadataDb {
  return new MetadataDb(dir === ":memory:" ? dir : join(dir, METADATA_FILE));
}

/** `io.containerd.metadata.v1`. */
export const MetadataPlugin = pluginType<MetadataDb>("io.containerd.metadata.v1");

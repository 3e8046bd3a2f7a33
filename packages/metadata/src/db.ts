import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import Database from "better-sqlite3";

/** Schema migrations, applied in order; `PRAGMA user_version` records how many ran. */
const MIGRATIONS: readonly string[] = [
  `CREATE TABLE namespaces (
     name TEXT PRIMARY KEY NOT NULL,
     created_at INTEGER NOT NULL
   ) WITHOUT ROWID;
   CREATE TABLE namespace_labels (
     namespace TEXT NOT NULL REFERENCES namespaces(name) ON DELETE CASCADE,
     key TEXT NOT NULL,
     value TEXT NOT NULL,
     PRIMARY KEY (namespace, key)
   ) WITHOUT ROWID;`,
  // Content records per namespace (blobs are shared on disk), namespaced ingests, leases.
  `CREATE TABLE content_blobs (
     namespace TEXT NOT NULL REFERENCES namespaces(name) ON DELETE CASCADE,
     digest TEXT NOT NULL,
     size INTEGER NOT NULL,
     created_at INTEGER NOT NULL,
     updated_at INTEGER NOT NULL,
     PRIMARY KEY (namespace, digest)
   ) WITHOUT ROWID;
   CREATE INDEX content_blobs_by_digest ON content_blobs (digest);
   CREATE TABLE content_labels (
     namespace TEXT NOT NULL,
     digest TEXT NOT NULL,
     key TEXT NOT NULL,
     value TEXT NOT NULL,
     PRIMARY KEY (namespace, digest, key),
     FOREIGN KEY (namespace, digest) REFERENCES content_blobs (namespace, digest) ON DELETE CASCADE
   ) WITHOUT ROWID;
   CREATE TABLE content_ingests (
     namespace TEXT NOT NULL REFERENCES namespaces(name) ON DELETE CASCADE,
     ref TEXT NOT NULL,
     backend_ref TEXT NOT NULL UNIQUE,
     expected TEXT NOT NULL DEFAULT '',
     expires_at INTEGER,
     virtual_size INTEGER,
     created_at INTEGER NOT NULL,
     PRIMARY KEY (namespace, ref)
   ) WITHOUT ROWID;
   CREATE TABLE sequences (
     name TEXT PRIMARY KEY NOT NULL,
     value INTEGER NOT NULL
   ) WITHOUT ROWID;
   CREATE TABLE leases (
     namespace TEXT NOT NULL REFERENCES namespaces(name) ON DELETE CASCADE,
     id TEXT NOT NULL,
     created_at INTEGER NOT NULL,
     PRIMARY KEY (namespace, id)
   ) WITHOUT ROWID;
   CREATE TABLE lease_labels (
     namespace TEXT NOT NULL,
     lease_id TEXT NOT NULL,
     key TEXT NOT NULL,
     value TEXT NOT NULL,
     PRIMARY KEY (namespace, lease_id, key),
     FOREIGN KEY (namespace, lease_id) REFERENCES leases (namespace, id) ON DELETE CASCADE
   ) WITHOUT ROWID;
   CREATE TABLE lease_resources (
     namespace TEXT NOT NULL,
     lease_id TEXT NOT NULL,
     type TEXT NOT NULL,
     resource_id TEXT NOT NULL,
     PRIMARY KEY (namespace, lease_id, type, resource_id),
     FOREIGN KEY (namespace, lease_id) REFERENCES leases (namespace, id) ON DELETE CASCADE
   ) WITHOUT ROWID;`,
  // Images per namespace (containerd's v1/<ns>/images/<name>): target descriptor, labels, target annotations.
  `CREATE TABLE images (
     namespace TEXT NOT NULL REFERENCES namespaces(name) ON DELETE CASCADE,
     name TEXT NOT NULL,
     media_type TEXT NOT NULL,
     digest TEXT NOT NULL,
     size INTEGER NOT NULL,
     created_at INTEGER NOT NULL,
     updated_at INTEGER NOT NULL,
     PRIMARY KEY (namespace, name)
   ) WITHOUT ROWID;
   CREATE TABLE image_labels (
     namespace TEXT NOT NULL,
     name TEXT NOT NULL,
     key TEXT NOT NULL,
     value TEXT NOT NULL,
     PRIMARY KEY (namespace, name, key),
     FOREIGN KEY (namespace, name) REFERENCES images (namespace, name) ON DELETE CASCADE
   ) WITHOUT ROWID;
   CREATE TABLE image_annotations (
     namespace TEXT NOT NULL,
     name TEXT NOT NULL,
     key TEXT NOT NULL,
     value TEXT NOT NULL,
     PRIMARY KEY (namespace, name, key),
     FOREIGN KEY (namespace, name) REFERENCES images (namespace, name) ON DELETE CASCADE
   ) WITHOUT ROWID;`,
  // Snapshots per namespace and snapshotter (containerd's v1/<ns>/snapshots/<snapshotter>/<key>): the backend
  // key (<ns>/<seq>/<key>), the namespace-local parent, times and labels.
  `CREATE TABLE snapshots (
     namespace TEXT NOT NULL REFERENCES namespaces(name) ON DELETE CASCADE,
     snapshotter TEXT NOT NULL,
     key TEXT NOT NULL,
     backend_key TEXT NOT NULL,
     parent TEXT NOT NULL DEFAULT '',
     created_at INTEGER NOT NULL,
     updated_at INTEGER NOT NULL,
     PRIMARY KEY (namespace, snapshotter, key)
   ) WITHOUT ROWID;
   CREATE INDEX snapshots_by_parent ON snapshots (namespace, snapshotter, parent);
   CREATE INDEX snapshots_by_backend_key ON snapshots (snapshotter, backend_key);
   CREATE TABLE snapshot_labels (
     namespace TEXT NOT NULL,
     snapshotter TEXT NOT NULL,
     key TEXT NOT NULL,
     label TEXT NOT NULL,
     value TEXT NOT NULL,
     PRIMARY KEY (namespace, snapshotter, key, label),
     FOREIGN KEY (namespace, snapshotter, key) REFERENCES snapshots (namespace, snapshotter, key) ON DELETE CASCADE
   ) WITHOUT ROWID;
   CREATE INDEX snapshot_labels_by_label ON snapshot_labels (label);`,
  // Containers per namespace (containerd's v1/<ns>/containers/<id>): runtime, spec and options as packed Anys.
  `CREATE TABLE containers (
     namespace TEXT NOT NULL REFERENCES namespaces(name) ON DELETE CASCADE,
     id TEXT NOT NULL,
     image TEXT NOT NULL DEFAULT '',
     runtime_name TEXT NOT NULL,
     runtime_options_type TEXT,
     runtime_options BLOB,
     spec_type TEXT,
     spec BLOB,
     snapshotter TEXT NOT NULL DEFAULT '',
     snapshot_key TEXT NOT NULL DEFAULT '',
     created_at INTEGER NOT NULL,
     updated_at INTEGER NOT NULL,
     PRIMARY KEY (namespace, id)
   ) WITHOUT ROWID;
   CREATE TABLE container_labels (
     namespace TEXT NOT NULL,
     id TEXT NOT NULL,
     key TEXT NOT NULL,
     value TEXT NOT NULL,
     PRIMARY KEY (namespace, id, key),
     FOREIGN KEY (namespace, id) REFERENCES containers (namespace, id) ON DELETE CASCADE
   ) WITHOUT ROWID;
   CREATE TABLE container_extensions (
     namespace TEXT NOT NULL,
     id TEXT NOT NULL,
     name TEXT NOT NULL,
     type_url TEXT NOT NULL,
     value BLOB NOT NULL,
     PRIMARY KEY (namespace, id, name),
     FOREIGN KEY (namespace, id) REFERENCES containers (namespace, id) ON DELETE CASCADE
   ) WITHOUT ROWID;`,
];

export type SqliteDatabase = Database.Database;
export type SqliteStatement<P extends unknown[] = unknown[], R = unknown> = Database.Statement<P, R>;

export interface OpenOptions {
  /** Path of the database file; ":memory:" for tests. */
  readonly path: string;
}

/**
 * Opens (creating if needed) the metadata database. WAL with full sync: a committed transaction survives
 * `kill -9` and power loss, like bolt's fsync per transaction.
 */
export function openDatabase(options: OpenOptions): SqliteDatabase {
  if (options.path !== ":memory:") mkdirSync(dirname(options.path), { recursive: true, mode: 0o711 });
  const db = new Database(options.path);
  db.pragma("journal_mode = WAL");
  db.pragma("synchronous = FULL");
  db.pragma("foreign_keys = ON");
  db.pragma("busy_timeout = 5000");
  migrate(db);
  return db;
}

function migrate(db: SqliteDatabase): void {
  const current = db.pragma("user_version", { simple: true }) as number;
  if (current > MIGRATIONS.length) {
    throw new Error(`metadata database schema ${current} is newer than this berthd (${MIGRATIONS.length})`);
  }
  if (current === MIGRATIONS.length) return;
  // All pending steps in one transaction: one sync instead of one per step, and never a half-migrated file.
  db.transaction(() => {
    for (let v = current; v < MIGRATIONS.length; v++) db.exec(MIGRATIONS[v] as string);
    db.pragma(`user_version = ${MIGRATIONS.length}`);
  })();
}

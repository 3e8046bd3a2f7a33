/**
 * The snapshotters' own metadata store (containerd's core/snapshots/storage, kept in SQLite): key → numeric
 * id, kind, parent, labels, times and the usage recorded at commit. Ids are a sequence that never reuses a
 * value; they name the directories under `<root>/snapshots`. Each mutation runs in one transaction with an
 * optional synchronous hook (a rename on disk): when the hook throws, nothing is recorded.
 */
import { AlreadyExistsError, FailedPreconditionError, InvalidArgumentError, NotFoundError } from "@berth/errdefs";
import { adaptSnapshot, parseAll } from "@berth/filters";
import Database from "better-sqlite3";
import { type Info, Kind, type Usage } from "../snapshotter.js";
import { applyLabelUpdate } from "./labels.js";

/** What a snapshotter needs to lay out and mount a snapshot. */
export interface Snapshot {
  readonly id: string;
  readonly kind: Kind;
  /** Ids of the parent chain, nearest first. */
  readonly parentIds: string[];
}

interface Row {
  id: number;
  key: string;
  kind: string;
  parent_id: number | null;
  created_at: number;
  updated_at: number;
  labels: string;
  size: number;
  inodes: number;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS snapshots (
  id         INTEGER PRIMARY KEY AUTOINCREMENT,
  key        TEXT    NOT NULL UNIQUE,
  kind       TEXT    NOT NULL CHECK (kind IN ('active', 'view', 'committed')),
  parent_id  INTEGER REFERENCES snapshots(id) ON DELETE RESTRICT,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  labels     TEXT    NOT NULL DEFAULT '{}',
  size       INTEGER NOT NULL DEFAULT 0,
  inodes     INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS snapshots_parent ON snapshots(parent_id);
`;

export class MetaStore {
  readonly #db: Database.Database;
  readonly #byKey: Database.Statement<[string], Row>;
  readonly #byId: Database.Statement<[number], Row>;
  readonly #children: Database.Statement<[number], { n: number }>;
  // Prepared once: preparing a statement costs more than running these small ones.
  readonly #q: {
    insert: Database.Statement<[string, string, number | null, number, number, string]>;
    commit: Database.Statement<[string, number, number, string, number, number, number]>;
    delete: Database.Statement<[number]>;
    setLabels: Database.Statement<[string, number, number]>;
    all: Database.Statement<[], Row>;
    ids: Database.Statement<[], { id: number }>;
  };

  constructor(path: string) {
    this.#db = new Database(path);
    this.#db.pragma("journal_mode = WAL");
    this.#db.pragma("synchronous = FULL");
    this.#db.pragma("foreign_keys = ON");
    this.#db.pragma("busy_timeout = 5000");
    this.#db.exec(SCHEMA);
    this.#byKey = this.#db.prepare("SELECT * FROM snapshots WHERE key = ?");
    this.#byId = this.#db.prepare("SELECT * FROM snapshots WHERE id = ?");
    this.#children = this.#db.prepare("SELECT count(*) AS n FROM snapshots WHERE parent_id = ?");
    this.#q = {
      insert: this.#db.prepare(
        "INSERT INTO snapshots (key, kind, parent_id, created_at, updated_at, labels) VALUES (?, ?, ?, ?, ?, ?)",
      ),
      commit: this.#db.prepare(
        "UPDATE snapshots SET key = ?, kind = 'committed', created_at = ?, updated_at = ?, labels = ?, size = ?, inodes = ? WHERE id = ?",
      ),
      delete: this.#db.prepare("DELETE FROM snapshots WHERE id = ?"),
      setLabels: this.#db.prepare("UPDATE snapshots SET labels = ?, updated_at = ? WHERE id = ?"),
      all: this.#db.prepare("SELECT * FROM snapshots ORDER BY key"),
      ids: this.#db.prepare("SELECT id FROM snapshots"),
    };
  }

  close(): void {
    if (this.#db.open) this.#db.close();
  }

  #row(key: string): Row {
    const row = this.#byKey.get(key);
    if (row === undefined) throw new NotFoundError(`snapshot ${key} does not exist`);
    return row;
  }

  #parentIds(row: Row): string[] {
    const ids: string[] = [];
    let next = row.parent_id;
    while (next !== null) {
      ids.push(String(next));
      const parent = this.#byId.get(next);
      if (parent === undefined) break;
      next = parent.parent_id;
    }
    return ids;
  }

  #info(row: Row): Info {
    const parent = row.parent_id === null ? undefined : this.#byId.get(row.parent_id);
    return {
      name: row.key,
      parent: parent?.key ?? "",
      kind: row.kind as Kind,
      createdAt: new Date(row.created_at),
      updatedAt: new Date(row.updated_at),
      labels: JSON.parse(row.labels) as Record<string, string>,
    };
  }

  #snapshot(row: Row): Snapshot {
    return { id: String(row.id), kind: row.kind as Kind, parentIds: this.#parentIds(row) };
  }

  /** Info and id of a snapshot of any kind. */
  getInfo(key: string): { id: string; info: Info; usage: Usage } {
    const row = this.#row(key);
    return { id: String(row.id), info: this.#info(row), usage: { size: row.size, inodes: row.inodes } };
  }

  /** An active or view snapshot, for its mounts (FailedPrecondition for a committed one). */
  getSnapshot(key: string): Snapshot {
    const row = this.#row(key);
    if (row.kind !== Kind.Active && row.kind !== Kind.View) {
      throw new FailedPreconditionError(`snapshot ${key} is not active or view`);
    }
    return this.#snapshot(row);
  }

  /** The checks of `createSnapshot`, without recording anything; returns the parent chain's ids. */
  checkCreate(key: string, parent: string): string[] {
    if (key === "") throw new InvalidArgumentError("snapshot key must not be empty");
    let parentIds: string[] = [];
    if (parent !== "") {
      const prow = this.#byKey.get(parent);
      if (prow === undefined) throw new NotFoundError(`parent snapshot ${parent} does not exist`);
      if (prow.kind !== Kind.Committed) {
        throw new InvalidArgumentError(`parent ${JSON.stringify(parent)} is not committed snapshot`);
      }
      parentIds = [String(prow.id), ...this.#parentIds(prow)];
    }
    if (this.#byKey.get(key) !== undefined) throw new AlreadyExistsError(`snapshot ${key}`);
    return parentIds;
  }

  /** Records a new active or view snapshot; `hook` runs inside the transaction with the new snapshot. */
  createSnapshot(
    kind: typeof Kind.Active | typeof Kind.View,
    key: string,
    parent: string,
    labels: Readonly<Record<string, string>>,
    hook?: (s: Snapshot) => void,
  ): Snapshot {
    return this.#db.transaction((): Snapshot => {
      const parentIds = this.checkCreate(key, parent);
      const now = Date.now();
      const res = this.#q.insert.run(
        key,
        kind,
        parentIds.length > 0 ? Number(parentIds[0]) : null,
        now,
        now,
        JSON.stringify(labels),
      );
      const s: Snapshot = { id: String(res.lastInsertRowid), kind, parentIds };
      hook?.(s);
      return s;
    })();
  }

  /** Checks that `key` is active and `name` free (what `commitActive` checks first). */
  checkCommit(name: string, key: string): Snapshot {
    if (name === "") throw new InvalidArgumentError("snapshot name must not be empty");
    const row = this.#row(key);
    // containerd's words (overlayfs): "failed to commit snapshot: snapshot "<key>" is not active"
    if (row.kind !== Kind.Active) {
      throw new FailedPreconditionError(`failed to commit snapshot: snapshot ${JSON.stringify(key)} is not active`);
    }
    if (this.#byKey.get(name) !== undefined) throw new AlreadyExistsError(`snapshot ${name}`);
    return this.#snapshot(row);
  }

  /**
   * Turns the active `key` into the committed `name`, keeping its id and parent; records `usage`. The
   * committed snapshot has the commit's labels and new times (as containerd's storage: the active snapshot's
   * labels are not carried over).
   */
  commitActive(key: string, name: string, usage: Usage, labels: Readonly<Record<string, string>>): Snapshot {
    return this.#db.transaction((): Snapshot => {
      const s = this.checkCommit(name, key);
      const now = Date.now();
      this.#q.commit.run(name, now, now, JSON.stringify(labels), usage.size, usage.inodes, Number(s.id));
      return { ...s, kind: Kind.Committed };
    })();
  }

  /** Removes `key` (FailedPrecondition when it has children); `hook` runs inside the transaction. */
  remove(key: string, hook?: (s: Snapshot) => void): Snapshot {
    return this.#db.transaction((): Snapshot => {
      const row = this.#row(key);
      const { n } = this.#children.get(row.id) ?? { n: 0 };
      if (n > 0) throw new FailedPreconditionError(`cannot remove snapshot ${key} with ${n} child(ren)`);
      const s = this.#snapshot(row);
      this.#q.delete.run(row.id);
      hook?.(s);
      return s;
    })();
  }

  update(key: string, labels: Readonly<Record<string, string>>, fieldpaths: readonly string[] | undefined): Info {
    return this.#db.transaction((): Info => {
      const row = this.#row(key);
      const next = applyLabelUpdate(JSON.parse(row.labels) as Record<string, string>, labels, fieldpaths, key);
      this.#q.setLabels.run(JSON.stringify(next), Math.max(Date.now(), row.updated_at), row.id);
      return this.#info(this.#row(key));
    })();
  }

  /** Infos matching any of the filters (all when none), sorted by key. */
  walk(filters: readonly string[] | undefined): Info[] {
    const filter = parseAll(filters ?? []);
    const rows = this.#q.all.all();
    const out: Info[] = [];
    for (const row of rows) {
      const info = this.#info(row);
      if (filter.match(adaptSnapshot(info))) out.push(info);
    }
    return out;
  }

  /** Every id in use. */
  ids(): Set<string> {
    const rows = this.#q.ids.all();
    return new Set(rows.map((r) => String(r.id)));
  }
}

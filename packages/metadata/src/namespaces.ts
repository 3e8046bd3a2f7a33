import { AlreadyExistsError, FailedPreconditionError, NotFoundError } from "@berth/errdefs";
import { validateIdentifier, validateLabels } from "@berth/identifiers";
import type { SqliteDatabase } from "./db.js";

export interface Namespace {
  readonly name: string;
  readonly labels: Record<string, string>;
}

/** What a namespace still holds; a namespace must be empty to be deleted. */
export type NamespaceContentProbe = (namespace: string) => string | undefined;

/**
 * Namespaces and their labels (containerd's `metadata.namespaceStore`). Objects of other kinds call
 * `ensure()` to create their namespace implicitly, as containerd's buckets do.
 */
export class NamespaceStore {
  readonly #db: SqliteDatabase;
  readonly #probes: NamespaceContentProbe[] = [];
  readonly #stmts;

  constructor(db: SqliteDatabase) {
    this.#db = db;
    this.#stmts = {
      exists: db.prepare<[string], { name: string }>("SELECT name FROM namespaces WHERE name = ?"),
      insert: db.prepare<[string, number]>("INSERT OR IGNORE INTO namespaces (name, created_at) VALUES (?, ?)"),
      list: db.prepare<[], { name: string }>("SELECT name FROM namespaces ORDER BY name"),
      labels: db.prepare<[string], { key: string; value: string }>(
        "SELECT key, value FROM namespace_labels WHERE namespace = ? ORDER BY key",
      ),
      setLabel: db.prepare<[string, string, string]>(
        "INSERT INTO namespace_labels (namespace, key, value) VALUES (?, ?, ?) ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value",
      ),
      deleteLabel: db.prepare<[string, string]>("DELETE FROM namespace_labels WHERE namespace = ? AND key = ?"),
      delete: db.prepare<[string]>("DELETE FROM namespaces WHERE name = ?"),
    };
  }

  /** Registers a check that reports what kind of object still lives in a namespace (e.g. "images"). */
  addContentProbe(probe: NamespaceContentProbe): void {
    this.#probes.push(probe);
  }

  create(name: string, labels: Record<string, string> = {}): Namespace {
    validateIdentifier(name);
    validateLabels(labels);
    return this.#db.transaction(() => {
      if (this.#stmts.exists.get(name)) throw new AlreadyExistsError(`namespace ${JSON.stringify(name)}`);
      this.#stmts.insert.run(name, Date.now());
      for (const [k, v] of Object.entries(labels)) this.#stmts.setLabel.run(name, k, v);
      return { name, labels: this.labels(name) };
    })();
  }

  /** Creates the namespace if it does not exist yet (objects create their namespace implicitly). */
  ensure(name: string): void {
    validateIdentifier(name);
    this.#stmts.insert.run(name, Date.now());
  }

  exists(name: string): boolean {
    return this.#stmts.exists.get(name) !== undefined;
  }

  /** Names in key order, as bolt lists them. */
  list(): string[] {
    return this.#stmts.list.all().map((r) => r.name);
  }

  /** Labels of a namespace; an unknown namespace has none (containerd answers Get for it with OK). */
  labels(name: string): Record<string, string> {
    const out: Record<string, string> = {};
    for (const { key, value } of this.#stmts.labels.all(name)) out[key] = value;
    return out;
  }

  /** Sets one label; an empty value removes it. Creates the namespace as containerd does. */
  setLabel(name: string, key: string, value: string): void {
    validateIdentifier(name);
    validateLabels({ [key]: value });
    this.#db.transaction(() => {
      this.#stmts.insert.run(name, Date.now());
      if (value === "") this.#stmts.deleteLabel.run(name, key);
      else this.#stmts.setLabel.run(name, key, value);
    })();
  }

  /** Replaces all labels at once. */
  replaceLabels(name: string, labels: Record<string, string>): void {
    validateIdentifier(name);
    validateLabels(labels);
    this.#db.transaction(() => {
      this.#stmts.insert.run(name, Date.now());
      for (const key of Object.keys(this.labels(name))) this.#stmts.deleteLabel.run(name, key);
      for (const [k, v] of Object.entries(labels)) if (v !== "") this.#stmts.setLabel.run(name, k, v);
    })();
  }

  delete(name: string): void {
    this.#db.transaction(() => {
      if (!this.#stmts.exists.get(name)) throw new NotFoundError(`namespace ${JSON.stringify(name)}`);
      const held = this.#probes.map((p) => p(name)).filter((x): x is string => x !== undefined);
      if (held.length > 0) {
        throw new FailedPreconditionError(
          `namespace ${JSON.stringify(name)} must be empty, but it still has ${held.join(", ")}`,
        );
      }
      this.#stmts.delete.run(name);
    })();
  }
}

import { AlreadyExistsError, InvalidArgumentError, NotFoundError, isInvalidArgument } from "@berth/errdefs";
import { adaptContainer } from "@berth/filters";
import { validateIdentifier, validateLabels } from "@berth/identifiers";
import type { SqliteDatabase } from "./db.js";
import { applyKeyPath, parseListFilters, withoutEmpty } from "./fieldpaths.js";
import { labelReferences } from "./gc/builtin.js";
import type { GcRoot, GcRootSource } from "./gc/types.js";

/** A packed value as containerd keeps it (a protobuf Any): type URL and bytes, stored as given. */
export interface AnyValue {
  readonly typeUrl: string;
  readonly value: Uint8Array;
}

/** The runtime a container runs under: its name (`io.containerd.runc.v2`) and options. */
export interface ContainerRuntime {
  readonly name: string;
  readonly options?: AnyValue;
}

/** A container record (containerd's containers.Container). */
export interface ContainerRecord {
  readonly id: string;
  readonly labels: Record<string, string>;
  readonly image: string;
  readonly runtime: ContainerRuntime;
  readonly spec?: AnyValue;
  readonly snapshotter: string;
  readonly snapshotKey: string;
  readonly extensions: Record<string, AnyValue>;
  readonly createdAt: Date;
  readonly updatedAt: Date;
}

/** What Create and Update take: the record without its times. */
export interface ContainerInput {
  readonly id: string;
  readonly labels?: Readonly<Record<string, string>>;
  readonly image?: string;
  readonly runtime?: ContainerRuntime;
  readonly spec?: AnyValue;
  readonly snapshotter?: string;
  readonly snapshotKey?: string;
  readonly extensions?: Readonly<Record<string, AnyValue>>;
}

export interface ContainerStoreHooks {
  onDelete(): void;
  onMutate?(): void;
}

interface ContainerRow {
  id: string;
  image: string;
  runtime_name: string;
  runtime_options_type: string | null;
  runtime_options: Buffer | null;
  spec_type: string | null;
  spec: Buffer | null;
  snapshotter: string;
  snapshot_key: string;
  created_at: number;
  updated_at: number;
}

/** containerd's validateContainer; InvalidArgument with its messages. */
export function validateContainer(c: ContainerInput): void {
  try {
    validateIdentifier(c.id);
  } catch (err) {
    if (isInvalidArgument(err)) throw new InvalidArgumentError(`container.ID: ${(err as Error).message}`);
    throw err;
  }
  for (const k of Object.keys(c.extensions ?? {})) {
    if (k === "") throw new InvalidArgumentError("container.Extension keys must not be zero-length");
  }
  try {
    validateLabels(c.labels);
  } catch (err) {
    if (isInvalidArgument(err)) throw new InvalidArgumentError(`containers.Labels: ${(err as Error).message}`);
    throw err;
  }
  if (!c.runtime?.name) throw new InvalidArgumentError("container.Runtime.Name must be set");
  if (c.spec === undefined) throw new InvalidArgumentError("container.Spec must be set");
  if (c.snapshotKey && !c.snapshotter) {
    throw new InvalidArgumentError("container.Snapshotter must be set if container.SnapshotKey is set");
  }
}

const COLUMNS =
  "id, image, runtime_name, runtime_options_type, runtime_options, spec_type, spec, snapshotter, snapshot_key, created_at, updated_at";

const bytes = (v: AnyValue | undefined): Buffer | null =>
  v === undefined ? null : Buffer.from(v.value.buffer, v.value.byteOffset, v.value.byteLength);
const anyOf = (type: string | null, value: Buffer | null): AnyValue | undefined =>
  type === null ? undefined : { typeUrl: type, value: new Uint8Array(value ?? Buffer.alloc(0)) };

/**
 * Containers per namespace (containerd's `metadata.containerStore`), listed in id order. Containers are GC
 * roots: see `containerRootSource`.
 */
export class ContainerStore {
  readonly #db: SqliteDatabase;
  readonly #hooks: ContainerStoreHooks;
  readonly #now: () => number;
  readonly #q;

  constructor(db: SqliteDatabase, hooks: ContainerStoreHooks, now: () => number = Date.now) {
    this.#db = db;
    this.#hooks = hooks;
    this.#now = now;
    this.#q = {
      ensureNs: db.prepare<[string, number]>("INSERT OR IGNORE INTO namespaces (name, created_at) VALUES (?, ?)"),
      get: db.prepare<[string, string], ContainerRow>(
        `SELECT ${COLUMNS} FROM containers WHERE namespace = ? AND id = ?`,
      ),
      list: db.prepare<[string], ContainerRow>(`SELECT ${COLUMNS} FROM containers WHERE namespace = ? ORDER BY id`),
      insert: db.prepare(`INSERT INTO containers (namespace, ${COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
      update: db.prepare(
        "UPDATE containers SET image = ?, spec_type = ?, spec = ?, snapshot_key = ?, updated_at = ? WHERE namespace = ? AND id = ?",
      ),
      delete: db.prepare<[string, string]>("DELETE FROM containers WHERE namespace = ? AND id = ?"),
      labelsOf: db.prepare<[string, string], { key: string; value: string }>(
        "SELECT key, value FROM container_labels WHERE namespace = ? AND id = ? ORDER BY key",
      ),
      extensionsOf: db.prepare<[string, string], { name: string; type_url: string; value: Buffer }>(
        "SELECT name, type_url, value FROM container_extensions WHERE namespace = ? AND id = ? ORDER BY name",
      ),
      clearLabels: db.prepare<[string, string]>("DELETE FROM container_labels WHERE namespace = ? AND id = ?"),
      clearExtensions: db.prepare<[string, string]>("DELETE FROM container_extensions WHERE namespace = ? AND id = ?"),
      insertLabel: db.prepare<[string, string, string, string]>(
        "INSERT INTO container_labels (namespace, id, key, value) VALUES (?, ?, ?, ?)",
      ),
      insertExtension: db.prepare<[string, string, string, string, Buffer]>(
        "INSERT INTO container_extensions (namespace, id, name, type_url, value) VALUES (?, ?, ?, ?, ?)",
      ),
    };
  }

  /** The container, or NotFound. */
  get(namespace: string, id: string): ContainerRecord {
    const row = this.#q.get.get(namespace, id);
    if (!row) throw new NotFoundError(`container ${JSON.stringify(id)} in namespace ${JSON.stringify(namespace)}`);
    return this.#record(namespace, row);
  }

  /** Containers of a namespace in id order matching any filter (`id`, `image`, `runtime.name`, `labels.<k>`). */
  list(namespace: string, filters: readonly string[] = []): ContainerRecord[] {
    const filter = parseListFilters(filters);
    const out: ContainerRecord[] = [];
    for (const row of this.#q.list.all(namespace)) {
      const c = this.#record(namespace, row);
      if (filter.match(adaptContainer(c))) out.push(c);
    }
    return out;
  }

  /** Creates a container; InvalidArgument for a bad record, AlreadyExists when the id is taken. */
  create(namespace: string, c: ContainerInput): ContainerRecord {
    validateIdentifier(namespace);
    validateContainer(c);
    const record = this.#db.transaction(() => {
      const now = this.#now();
      this.#q.ensureNs.run(namespace, now);
      if (this.#q.get.get(namespace, c.id)) throw new AlreadyExistsError(`container ${JSON.stringify(c.id)}`);
      this.#q.insert.run(
        namespace,
        c.id,
        c.image ?? "",
        c.runtime?.name ?? "",
        c.runtime?.options?.typeUrl ?? null,
        bytes(c.runtime?.options),
        c.spec?.typeUrl ?? null,
        bytes(c.spec),
        c.snapshotter ?? "",
        c.snapshotKey ?? "",
        now,
        now,
      );
      this.#writeMaps(namespace, c.id, c.labels, c.extensions);
      return this.get(namespace, c.id);
    })();
    this.#hooks.onMutate?.();
    return record;
  }

  /**
   * Updates a container (containerd's containerStore.Update). With field paths only those change: `labels`,
   * `labels.<key>`, `extensions`, `extensions.<key>`, `spec`, `image`, `snapshotkey`; any other path is
   * InvalidArgument. Without paths all of those are replaced, and the snapshotter and runtime name must be
   * unchanged. NotFound when missing.
   */
  update(namespace: string, c: ContainerInput, fieldpaths: readonly string[] = []): ContainerRecord {
    if (c.id === "") throw new InvalidArgumentError("must specify a container id");
    const record = this.#db.transaction(() => {
      const row = this.#q.get.get(namespace, c.id);
      if (!row) throw new NotFoundError(`container ${JSON.stringify(c.id)}`);
      const cur = this.#record(namespace, row);
      let labels: Record<string, string> = { ...cur.labels };
      let extensions: Record<string, AnyValue> = { ...cur.extensions };
      let spec = cur.spec;
      let image = cur.image;
      let snapshotKey = cur.snapshotKey;
      let paths = fieldpaths;
      if (paths.length === 0) {
        paths = ["labels", "spec", "extensions", "image", "snapshotkey"];
        if ((c.snapshotter ?? "") !== cur.snapshotter) {
          throw new InvalidArgumentError("container.Snapshotter field is immutable");
        }
        if ((c.runtime?.name ?? "") !== cur.runtime.name) {
          throw new InvalidArgumentError("container.Runtime.Name field is immutable");
        }
      }
      for (const path of paths) {
        if (applyKeyPath(labels, c.labels, "labels", path)) continue;
        if (applyKeyPath(extensions, c.extensions, "extensions", path)) continue;
        switch (path) {
          case "labels":
            labels = { ...(c.labels ?? {}) };
            break;
          case "spec":
            spec = c.spec;
            break;
          case "extensions":
            extensions = { ...(c.extensions ?? {}) };
            break;
          case "image":
            image = c.image ?? "";
            break;
          case "snapshotkey":
            snapshotKey = c.snapshotKey ?? "";
            break;
          default:
            throw new InvalidArgumentError(`cannot update ${JSON.stringify(path)} field on ${JSON.stringify(c.id)}`);
        }
      }
      labels = withoutEmpty(labels);
      const updated: ContainerInput = {
        id: c.id,
        labels,
        image,
        runtime: cur.runtime,
        ...(spec !== undefined ? { spec } : {}),
        snapshotter: cur.snapshotter,
        snapshotKey,
        extensions,
      };
      try {
        validateContainer(updated);
      } catch (err) {
        if (isInvalidArgument(err))
          throw new InvalidArgumentError(`update failed validation: ${(err as Error).message}`);
        throw err;
      }
      const now = Math.max(this.#now(), cur.createdAt.getTime());
      this.#q.update.run(image, spec?.typeUrl ?? null, bytes(spec), snapshotKey, now, namespace, c.id);
      this.#q.clearLabels.run(namespace, c.id);
      this.#q.clearExtensions.run(namespace, c.id);
      this.#writeMaps(namespace, c.id, labels, extensions);
      return this.get(namespace, c.id);
    })();
    this.#hooks.onMutate?.();
    return record;
  }

  /** Deletes a container record (its snapshot is left to the collector); NotFound when missing. */
  delete(namespace: string, id: string): void {
    const { changes } = this.#q.delete.run(namespace, id);
    if (changes === 0) throw new NotFoundError(`container ${id}`);
    this.#hooks.onDelete();
  }

  #writeMaps(
    namespace: string,
    id: string,
    labels: Readonly<Record<string, string>> | undefined,
    extensions: Readonly<Record<string, AnyValue>> | undefined,
  ): void {
    for (const [k, v] of Object.entries(labels ?? {})) if (v !== "") this.#q.insertLabel.run(namespace, id, k, v);
    for (const [k, v] of Object.entries(extensions ?? {})) {
      this.#q.insertExtension.run(namespace, id, k, v.typeUrl, bytes(v) ?? Buffer.alloc(0));
    }
  }

  #record(namespace: string, row: ContainerRow): ContainerRecord {
    const labels: Record<string, string> = {};
    for (const { key, value } of this.#q.labelsOf.all(namespace, row.id)) labels[key] = value;
    const extensions: Record<string, AnyValue> = {};
    for (const e of this.#q.extensionsOf.all(namespace, row.id)) {
      extensions[e.name] = { typeUrl: e.type_url, value: new Uint8Array(e.value) };
    }
    const options = anyOf(row.runtime_options_type, row.runtime_options);
    const spec = anyOf(row.spec_type, row.spec);
    return {
      id: row.id,
      labels,
      image: row.image,
      runtime: { name: row.runtime_name, ...(options !== undefined ? { options } : {}) },
      ...(spec !== undefined ? { spec } : {}),
      snapshotter: row.snapshotter,
      snapshotKey: row.snapshot_key,
      extensions,
      createdAt: new Date(row.created_at),
      updatedAt: new Date(row.updated_at),
    };
  }
}

/** Registers the "namespace must be empty" check for containers. */
export function registerContainerProbe(db: {
  db: SqliteDatabase;
  namespaces: { addContentProbe(p: (ns: string) => string | undefined): void };
}): void {
  const any = db.db.prepare<[string], { one: number }>("SELECT 1 AS one FROM containers WHERE namespace = ? LIMIT 1");
  db.namespaces.addContentProbe((namespace) => (any.get(namespace) ? "containers" : undefined));
}

/**
 * Containers are GC roots (containerd's `containers/<id>`): each keeps its snapshot (`snapshotter` + key) and
 * whatever its `containerd.io/gc.ref.*` labels name, in its namespace.
 */
export function containerRootSource(db: SqliteDatabase): GcRootSource {
  const snapshots = db.prepare<[], { namespace: string; snapshotter: string; snapshot_key: string }>(
    "SELECT namespace, snapshotter, snapshot_key FROM containers WHERE snapshot_key != '' AND snapshotter != ''",
  );
  const refLabels = db.prepare<[string, string], { namespace: string; key: string; value: string }>(
    "SELECT namespace, key, value FROM container_labels WHERE key >= ? AND key < ?",
  );
  return {
    name: "containers",
    *roots(): Iterable<GcRoot> {
      for (const s of snapshots.all()) {
        yield { node: { type: `snapshots/${s.snapshotter}`, namespace: s.namespace, id: s.snapshot_key } };
      }
      for (const l of refLabels.all("containerd.io/gc.ref.", "containerd.io/gc.ref/")) {
        for (const node of labelReferences(l.namespace, [[l.key, l.value]])) yield { node };
      }
    },
  };
}

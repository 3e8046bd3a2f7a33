import {
  AlreadyExistsError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  isNotFound,
} from "@berth/errdefs";
import { adaptSnapshot, parseAll } from "@berth/filters";
import { requireNamespace, validateLabels } from "@berth/identifiers";
import { type Logger, silentLogger } from "@berth/plugin";
import {
  type Cleaner,
  type Ctx,
  type Info,
  type InfoUpdate,
  type Mount,
  SNAPSHOT_LABEL_PREFIX,
  type SnapshotOptions,
  type Snapshotter,
  type Usage,
  type WalkFn,
  isCleaner,
} from "@berth/snapshotter";
import type { SqliteDatabase } from "./db.js";
import { applyKeyPath, withoutEmpty } from "./fieldpaths.js";
import { LABEL_GC_ROOT, labelReferences } from "./gc/builtin.js";
import type { GcContext, GcNode, GcResourceKind, GcRoot, GcRootSource } from "./gc/types.js";
import type { MetadataDb } from "./metadata.js";

/** Label naming the target of a remote snapshotter; passed to the backend as the `containerd.io/snapshot/` ones. */
export const LABEL_SNAPSHOT_REF = "containerd.io/snapshot.ref";

/** The lease resource / GC node type of a snapshotter's snapshots: `snapshots/<snapshotter>`. */
export const snapshotResourceType = (snapshotter: string): string => `snapshots/${snapshotter}`;

/** The labels a backend snapshotter gets: `containerd.io/snapshot/*` and `containerd.io/snapshot.ref`. */
export function inheritedSnapshotLabels(labels: Readonly<Record<string, string>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(labels)) {
    if (k === LABEL_SNAPSHOT_REF || k.startsWith(SNAPSHOT_LABEL_PREFIX)) out[k] = v;
  }
  return out;
}

const isInherited = (label: string): boolean => label === LABEL_SNAPSHOT_REF || label.startsWith(SNAPSHOT_LABEL_PREFIX);

interface SnapshotRow {
  key: string;
  backend_key: string;
  parent: string;
  created_at: number;
  updated_at: number;
}

/** Registers the "namespace must be empty" check for snapshot records. */
export function registerSnapshotProbe(db: MetadataDb): void {
  const any = db.db.prepare<[string], { one: number }>("SELECT 1 AS one FROM snapshots WHERE namespace = ? LIMIT 1");
  db.namespaces.addContentProbe((namespace) => (any.get(namespace) ? "snapshots" : undefined));
}

/**
 * containerd's metadata snapshotter over a shared backend: each namespace has its own key space; a key maps to
 * the backend key `<namespace>/<seq>/<key>`, parents are translated both ways, and only the
 * `containerd.io/snapshot/` labels (and `containerd.io/snapshot.ref`) reach the backend: every label is kept
 * here. Snapshots created in a call with `Ctx.lease` join that lease. Remove only drops the record: the backend
 * snapshot goes with the next garbage collection (`collectSnapshotterBackend`).
 */
export function createNamespacedSnapshotter(
  db: MetadataDb,
  name: string,
  backend: Snapshotter,
): Snapshotter & Partial<Cleaner> {
  return new NamespacedSnapshotter(db, name, backend);
}

class NamespacedSnapshotter implements Snapshotter {
  readonly #meta: MetadataDb;
  readonly #name: string;
  readonly #type: string;
  readonly #backend: Snapshotter;
  readonly #q;
  readonly cleanup?: (ctx: Ctx) => Promise<void>;

  constructor(meta: MetadataDb, name: string, backend: Snapshotter) {
    this.#meta = meta;
    this.#name = name;
    this.#type = snapshotResourceType(name);
    this.#backend = backend;
    const db = meta.db;
    const cols = "key, backend_key, parent, created_at, updated_at";
    this.#q = {
      get: db.prepare<[string, string, string], SnapshotRow>(
        `SELECT ${cols} FROM snapshots WHERE namespace = ? AND snapshotter = ? AND key = ?`,
      ),
      list: db.prepare<[string, string], SnapshotRow>(
        `SELECT ${cols} FROM snapshots WHERE namespace = ? AND snapshotter = ? ORDER BY key`,
      ),
      child: db.prepare<[string, string, string], { key: string }>(
        "SELECT key FROM snapshots WHERE namespace = ? AND snapshotter = ? AND parent = ? LIMIT 1",
      ),
      insert: db.prepare<[string, string, string, string, string, number, number]>(
        "INSERT INTO snapshots (namespace, snapshotter, key, backend_key, parent, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
      ),
      delete: db.prepare<[string, string, string]>(
        "DELETE FROM snapshots WHERE namespace = ? AND snapshotter = ? AND key = ?",
      ),
      touch: db.prepare<[number, string, string, string]>(
        "UPDATE snapshots SET updated_at = ? WHERE namespace = ? AND snapshotter = ? AND key = ?",
      ),
      labels: db.prepare<[string, string, string], { label: string; value: string }>(
        "SELECT label, value FROM snapshot_labels WHERE namespace = ? AND snapshotter = ? AND key = ? ORDER BY label",
      ),
      nsLabels: db.prepare<[string, string], { key: string; label: string; value: string }>(
        "SELECT key, label, value FROM snapshot_labels WHERE namespace = ? AND snapshotter = ?",
      ),
      setLabel: db.prepare<[string, string, string, string, string]>(
        "INSERT INTO snapshot_labels (namespace, snapshotter, key, label, value) VALUES (?, ?, ?, ?, ?) ON CONFLICT (namespace, snapshotter, key, label) DO UPDATE SET value = excluded.value",
      ),
      deleteLabels: db.prepare<[string, string, string]>(
        "DELETE FROM snapshot_labels WHERE namespace = ? AND snapshotter = ? AND key = ?",
      ),
      nextSeq: db.prepare<[string], { value: number }>(
        "INSERT INTO sequences (name, value) VALUES (?, 1) ON CONFLICT (name) DO UPDATE SET value = value + 1 RETURNING value",
      ),
    };
    if (isCleaner(backend)) {
      this.cleanup = (ctx: Ctx) => this.#meta.gcLock.shared(() => backend.cleanup(backendCtx(ctx)));
    }
  }

  async stat(ctx: Ctx, key: string): Promise<Info> {
    const ns = requireNamespace(ctx.namespace);
    const row = this.#row(ns, key);
    return this.#merge(ns, row, await this.#backendStat(ctx, row, key), this.#labels(ns, key));
  }

  async update(ctx: Ctx, info: InfoUpdate, fieldpaths?: readonly string[]): Promise<Info> {
    const ns = requireNamespace(ctx.namespace);
    const key = info.name;
    if (key === "") throw new InvalidArgumentError("snapshot name must not be empty");
    const given = info.labels ?? {};
    const paths = fieldpaths ?? [];
    for (const path of paths) {
      if (path !== "labels" && !path.startsWith("labels.")) {
        throw new InvalidArgumentError(
          `cannot update ${JSON.stringify(path)} field on snapshot ${JSON.stringify(key)}`,
        );
      }
    }
    const { row, labels, touchedInherited } = this.#meta.db.transaction(() => {
      const found = this.#row(ns, key);
      const current = this.#labels(ns, key);
      let next: Record<string, string>;
      let touched = false;
      if (paths.length === 0 || paths.includes("labels")) {
        next = { ...given };
        touched = true;
      } else {
        next = { ...current };
        for (const path of paths) {
          applyKeyPath(next, given, "labels", path);
          if (isInherited(path.slice("labels.".length))) touched = true;
        }
      }
      next = withoutEmpty(next);
      try {
        validateLabels(next);
      } catch (err) {
        throw new InvalidArgumentError(`info.Labels: ${(err as Error).message}`, { cause: err });
      }
      this.#q.deleteLabels.run(ns, this.#name, key);
      for (const [k, v] of Object.entries(next)) this.#q.setLabel.run(ns, this.#name, key, k, v);
      const now = Math.max(Date.now(), found.updated_at);
      this.#q.touch.run(now, ns, this.#name, key);
      return { row: { ...found, updated_at: now }, labels: next, touchedInherited: touched };
    })();
    this.#meta.notifyChange("mutate");
    let binfo: Info;
    if (touchedInherited) {
      binfo = await this.#backend.update(
        backendCtx(ctx),
        { name: row.backend_key, labels: inheritedSnapshotLabels(labels) },
        ["labels"],
      );
    } else {
      binfo = await this.#backendStat(ctx, row, key);
    }
    return this.#merge(ns, row, binfo, labels);
  }

  async usage(ctx: Ctx, key: string): Promise<Usage> {
    const ns = requireNamespace(ctx.namespace);
    return this.#backend.usage(backendCtx(ctx), this.#row(ns, key).backend_key);
  }

  async mounts(ctx: Ctx, key: string): Promise<Mount[]> {
    const ns = requireNamespace(ctx.namespace);
    return this.#backend.mounts(backendCtx(ctx), this.#row(ns, key).backend_key);
  }

  prepare(ctx: Ctx, key: string, parent: string, options?: SnapshotOptions): Promise<Mount[]> {
    return this.#create(ctx, key, parent, false, options);
  }

  view(ctx: Ctx, key: string, parent: string, options?: SnapshotOptions): Promise<Mount[]> {
    return this.#create(ctx, key, parent, true, options);
  }

  async #create(
    ctx: Ctx,
    key: string,
    parent: string,
    readonly: boolean,
    options: SnapshotOptions | undefined,
  ): Promise<Mount[]> {
    const ns = requireNamespace(ctx.namespace);
    if (key === "") throw new InvalidArgumentError("snapshot key must not be empty");
    const labels = this.#checkLabels(options?.labels);
    const mounts = await this.#meta.gcLock.shared(async () => {
      const reserved = this.#meta.db.transaction(() => {
        this.#meta.namespaces.ensure(ns);
        if (this.#q.get.get(ns, this.#name, key)) throw new AlreadyExistsError(`snapshot ${JSON.stringify(key)}`);
        this.#meta.leases.addToCallLease(ns, ctx.lease, this.#type, key);
        let bparent = "";
        if (parent !== "") {
          const p = this.#q.get.get(ns, this.#name, parent);
          if (!p) throw new NotFoundError(`parent snapshot ${parent} does not exist`);
          bparent = p.backend_key;
        }
        const bkey = this.#insert(ns, key, parent, labels);
        return { bkey, bparent };
      })();
      const bctx = backendCtx(ctx);
      const bopts = { labels: inheritedSnapshotLabels(labels) };
      try {
        return readonly
          ? await this.#backend.view(bctx, reserved.bkey, reserved.bparent, bopts)
          : await this.#backend.prepare(bctx, reserved.bkey, reserved.bparent, bopts);
      } catch (err) {
        this.#unreserve(ns, ctx.lease, key);
        throw err;
      }
    });
    this.#meta.notifyChange("mutate");
    return mounts;
  }

  async commit(ctx: Ctx, name: string, key: string, options?: SnapshotOptions): Promise<void> {
    const ns = requireNamespace(ctx.namespace);
    if (name === "") throw new InvalidArgumentError("snapshot name must not be empty");
    const labels = this.#checkLabels(options?.labels);
    await this.#meta.gcLock.shared(async () => {
      const reserved = this.#meta.db.transaction(() => {
        const active = this.#q.get.get(ns, this.#name, key);
        if (!active) throw new NotFoundError(`snapshot ${key} does not exist`);
        if (this.#q.get.get(ns, this.#name, name)) throw new AlreadyExistsError(`snapshot ${JSON.stringify(name)}`);
        this.#meta.leases.addToCallLease(ns, ctx.lease, this.#type, name);
        const nameKey = this.#insert(ns, name, active.parent, labels);
        return { bkey: active.backend_key, nameKey };
      })();
      try {
        await this.#backend.commit(backendCtx(ctx), reserved.nameKey, reserved.bkey, {
          labels: inheritedSnapshotLabels(labels),
        });
      } catch (err) {
        this.#unreserve(ns, ctx.lease, name);
        throw err;
      }
      this.#meta.db.transaction(() => {
        this.#q.delete.run(ns, this.#name, key);
        this.#meta.leases.removeFromCallLease(ns, ctx.lease, this.#type, key);
      })();
    });
    this.#meta.notifyChange("mutate");
  }

  async remove(ctx: Ctx, key: string): Promise<void> {
    const ns = requireNamespace(ctx.namespace);
    this.#meta.db.transaction(() => {
      this.#row(ns, key);
      if (this.#q.child.get(ns, this.#name, key)) {
        throw new FailedPreconditionError("cannot remove snapshot with child");
      }
      this.#q.delete.run(ns, this.#name, key);
      this.#meta.leases.removeFromCallLease(ns, ctx.lease, this.#type, key);
    })();
    // The backend snapshot is removed by the next collection.
    this.#meta.markSnapshotterDirty(this.#name);
    this.#meta.notifyChange("delete");
  }

  async walk(ctx: Ctx, fn: WalkFn, filters?: readonly string[]): Promise<void> {
    const ns = requireNamespace(ctx.namespace);
    const filter = parseAll(filters ?? []);
    const rows = this.#q.list.all(ns, this.#name);
    const labels = new Map<string, Record<string, string>>();
    for (const l of this.#q.nsLabels.all(ns, this.#name)) {
      const set = labels.get(l.key) ?? {};
      set[l.label] = l.value;
      labels.set(l.key, set);
    }
    const bctx = backendCtx(ctx);
    for (const row of rows) {
      ctx.signal?.throwIfAborted();
      let binfo: Info;
      try {
        binfo = await this.#backend.stat(bctx, row.backend_key);
      } catch (err) {
        if (isNotFound(err)) continue; // removed meanwhile
        throw err;
      }
      const info = this.#merge(ns, row, binfo, labels.get(row.key) ?? {});
      if (filter.match(adaptSnapshot(info))) await fn(info);
    }
  }

  /** The backend is a plugin of its own; the daemon closes it. */
  async close(): Promise<void> {}

  // ---- internals ----

  #checkLabels(given: Readonly<Record<string, string>> | undefined): Record<string, string> {
    const labels = Object.fromEntries(Object.entries(given ?? {}).filter(([, v]) => v !== ""));
    try {
      validateLabels(labels);
    } catch (err) {
      throw new InvalidArgumentError(`info.Labels: ${(err as Error).message}`, { cause: err });
    }
    return labels;
  }

  /** Inserts a record with a fresh backend key (inside the caller's transaction); returns the backend key. */
  #insert(ns: string, key: string, parent: string, labels: Record<string, string>): string {
    const seq = this.#q.nextSeq.get(`snapshots/${this.#name}/${ns}`)!.value;
    const bkey = `${ns}/${seq}/${key}`;
    const now = Date.now();
    this.#q.insert.run(ns, this.#name, key, bkey, parent, now, now);
    for (const [k, v] of Object.entries(labels)) this.#q.setLabel.run(ns, this.#name, key, k, v);
    return bkey;
  }

  /** Drops a record reserved for a backend call that failed. */
  #unreserve(ns: string, lease: string | undefined, key: string): void {
    this.#meta.db.transaction(() => {
      this.#q.delete.run(ns, this.#name, key);
      this.#meta.leases.removeFromCallLease(ns, lease, this.#type, key);
    })();
    this.#meta.markSnapshotterDirty(this.#name); // the backend may have made part of it
  }

  #row(ns: string, key: string): SnapshotRow {
    const row = this.#q.get.get(ns, this.#name, key);
    if (!row) throw new NotFoundError(`snapshot ${key} does not exist`);
    return row;
  }

  async #backendStat(ctx: Ctx, row: SnapshotRow, key: string): Promise<Info> {
    try {
      return await this.#backend.stat(backendCtx(ctx), row.backend_key);
    } catch (err) {
      if (isNotFound(err)) throw new NotFoundError(`snapshot ${key} does not exist`, { cause: err });
      throw err;
    }
  }

  #labels(ns: string, key: string): Record<string, string> {
    const out: Record<string, string> = {};
    for (const { label, value } of this.#q.labels.all(ns, this.#name, key)) out[label] = value;
    return out;
  }

  /** The backend's info seen from the namespace: local name, parent, times; local labels over backend ones. */
  #merge(_ns: string, row: SnapshotRow, binfo: Info, labels: Record<string, string>): Info {
    return {
      name: row.key,
      parent: row.parent,
      kind: binfo.kind,
      createdAt: new Date(row.created_at),
      updatedAt: new Date(row.updated_at),
      labels: { ...binfo.labels, ...labels },
    };
  }
}

const backendCtx = (ctx: Ctx): Ctx =>
  ctx.signal === undefined ? { namespace: ctx.namespace } : { namespace: ctx.namespace, signal: ctx.signal };

// ---- garbage collection ----

/** Snapshots labelled `containerd.io/gc.root` are roots. */
export function snapshotRootSource(db: SqliteDatabase): GcRootSource {
  const roots = db.prepare<[string], { namespace: string; snapshotter: string; key: string }>(
    "SELECT namespace, snapshotter, key FROM snapshot_labels WHERE label = ?",
  );
  return {
    name: "snapshots",
    *roots(): Iterable<GcRoot> {
      for (const r of roots.all(LABEL_GC_ROOT)) {
        yield { node: { type: snapshotResourceType(r.snapshotter), namespace: r.namespace, id: r.key } };
      }
    },
  };
}

/** Snapshot records (`snapshots/<snapshotter>`): a snapshot keeps its parent and what its `gc.ref.*` labels name. */
export function snapshotResourceKind(
  db: SqliteDatabase,
  onRemove: (snapshotter: string) => void = () => {},
): GcResourceKind {
  const parent = db.prepare<[string, string, string], { parent: string }>(
    "SELECT parent FROM snapshots WHERE namespace = ? AND snapshotter = ? AND key = ?",
  );
  const labels = db.prepare<[string, string, string], { label: string; value: string }>(
    "SELECT label, value FROM snapshot_labels WHERE namespace = ? AND snapshotter = ? AND key = ?",
  );
  const all = db.prepare<[], { namespace: string; snapshotter: string; key: string }>(
    "SELECT namespace, snapshotter, key FROM snapshots",
  );
  const remove = db.prepare<[string, string, string]>(
    "DELETE FROM snapshots WHERE namespace = ? AND snapshotter = ? AND key = ?",
  );
  const snapshotterOf = (node: GcNode): string => node.type.slice("snapshots/".length);
  return {
    type: "snapshots/",
    *references(_gc: GcContext, node: GcNode): Iterable<GcNode> {
      const sn = snapshotterOf(node);
      const row = parent.get(node.namespace, sn, node.id);
      if (!row) return;
      if (row.parent !== "") yield { type: node.type, namespace: node.namespace, id: row.parent };
      yield* labelReferences(
        node.namespace,
        labels.all(node.namespace, sn, node.id).map((l) => [l.label, l.value] as const),
      );
    },
    records() {
      return all.all().map((r) => ({ type: snapshotResourceType(r.snapshotter), namespace: r.namespace, id: r.key }));
    },
    remove(_gc, node) {
      const sn = snapshotterOf(node);
      remove.run(node.namespace, sn, node.id);
      onRemove(sn);
    },
  };
}

/** The namespace the collector passes to a shared backend (which is not namespaced). */
const GC_CTX: Ctx = { namespace: "berth-gc" };

/**
 * Removes from a backend every snapshot no namespace records (containerd's snapshotter garbageCollect): leaves
 * first, so that a parent goes after its children; then the backend's Cleanup when it has one. Returns how many
 * backend snapshots were removed. Run it under the exclusive GC lock, after the records were swept.
 */
export async function collectSnapshotterBackend(
  db: SqliteDatabase,
  name: string,
  backend: Snapshotter,
  log: Logger = silentLogger,
): Promise<number> {
  const infos: Info[] = [];
  await backend.walk(GC_CTX, (info) => {
    infos.push(info);
  });
  const seen = new Set(
    db
      .prepare<[string], { backend_key: string }>("SELECT backend_key FROM snapshots WHERE snapshotter = ?")
      .all(name)
      .map((r) => r.backend_key),
  );
  const parentOf = new Map(infos.map((i) => [i.name, i.parent]));
  const depth = (key: string): number => {
    let d = 0;
    for (let p = parentOf.get(key); p !== undefined && p !== "" && d < 10_000; p = parentOf.get(p)) d++;
    return d;
  };
  const dead = infos
    .filter((i) => !seen.has(i.name))
    .map((i) => ({ key: i.name, depth: depth(i.name) }))
    .sort((a, b) => b.depth - a.depth || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  let removed = 0;
  for (const { key } of dead) {
    try {
      await backend.remove(GC_CTX, key);
      removed++;
      log.debug({ snapshotter: name, key }, "removed snapshot");
    } catch (err) {
      if (!isNotFound(err)) log.warn({ snapshotter: name, key, err }, "failed to remove snapshot");
    }
  }
  if (isCleaner(backend)) {
    try {
      await backend.cleanup(GC_CTX);
    } catch (err) {
      log.warn({ snapshotter: name, err }, "snapshotter cleanup failed");
    }
  }
  return removed;
}

import { randomBytes } from "node:crypto";
import { AlreadyExistsError, InvalidArgumentError, NotFoundError, NotImplementedError } from "@berth/errdefs";
import { adaptLease } from "@berth/filters";
import { validateIdentifier, validateLabels } from "@berth/identifiers";
import { digestProblem } from "@berth/oci-spec";
import type { SqliteDatabase } from "./db.js";
import { parseListFilters } from "./fieldpaths.js";

/** Label on a lease: RFC3339 time after which the lease no longer protects anything. */
export const LABEL_GC_EXPIRE = "containerd.io/gc.expire";
/** Label on a lease: leased objects are kept, but their label references are not followed. */
export const LABEL_GC_FLAT = "containerd.io/gc.flat";

export interface Lease {
  readonly id: string;
  readonly createdAt: Date;
  readonly labels: Record<string, string>;
}

/** A leased object: `content` (digest), `ingests` (ref) or `snapshots/<snapshotter>` (key). */
export interface LeaseResource {
  readonly id: string;
  readonly type: string;
}

export interface CreateLeaseOptions {
  readonly id: string;
  readonly labels?: Record<string, string>;
}

/** What the lease store tells the database about: deletions make the garbage collector run. */
export interface LeaseStoreHooks {
  onDelete(): void;
}

/**
 * containerd's lease id (`leases.WithRandomID`, what the Leases service picks when a Create request has no id):
 * `<nanoseconds within the current second>-<base64url of 3 random bytes>`, e.g. `37327929-TQDU`.
 */
export function generateLeaseId(): string {
  // Go's t.Nanosecond(): the wall clock's milliseconds within the second, the sub-millisecond part from hrtime
  const nanos = (Date.now() % 1000) * 1_000_000 + Number(process.hrtime.bigint() % 1_000_000n);
  return `${nanos}-${randomBytes(3).toString("base64url")}`;
}

/** Checks a resource and returns its canonical form; InvalidArgument or NotImplemented otherwise. */
export function validateLeaseResource(resource: LeaseResource): LeaseResource {
  const { id, type } = resource;
  if (id === "") throw new InvalidArgumentError("resource id must not be empty");
  if (type === "content") {
    const problem = digestProblem(id);
    if (problem !== undefined)
      throw new InvalidArgumentError(`invalid content resource ${JSON.stringify(id)}: ${problem}`);
    return { id, type };
  }
  if (type === "ingests") return { id, type };
  if (type === "snapshots" || type.startsWith("snapshots/")) {
    const snapshotter = type.slice("snapshots/".length);
    if (type === "snapshots" || snapshotter === "" || snapshotter.includes("/")) {
      throw new InvalidArgumentError(`invalid resource type ${JSON.stringify(type)}`);
    }
    return { id, type };
  }
  throw new NotImplementedError(`resource type ${JSON.stringify(type)} not supported`);
}

/** The expiry of a lease from its `containerd.io/gc.expire` label, or undefined when absent or unparsable. */
export function leaseExpiry(labels: Readonly<Record<string, string>>): number | undefined {
  const raw = labels[LABEL_GC_EXPIRE];
  if (raw === undefined) return undefined;
  const t = Date.parse(raw);
  return Number.isNaN(t) ? undefined : t;
}

const TYPE_ORDER = (type: string): number => (type === "content" ? 0 : type === "ingests" ? 1 : 2);

/**
 * Leases and the objects they hold (containerd's `metadata.leaseManager`). A lease that has not expired is a
 * garbage collection root for all its resources.
 */
export class LeaseStore {
  readonly #db: SqliteDatabase;
  readonly #hooks: LeaseStoreHooks;
  readonly #stmts;

  constructor(db: SqliteDatabase, hooks: LeaseStoreHooks) {
    this.#db = db;
    this.#hooks = hooks;
    this.#stmts = {
      ensureNs: db.prepare<[string, number]>("INSERT OR IGNORE INTO namespaces (name, created_at) VALUES (?, ?)"),
      get: db.prepare<[string, string], { id: string; created_at: number }>(
        "SELECT id, created_at FROM leases WHERE namespace = ? AND id = ?",
      ),
      insert: db.prepare<[string, string, number]>("INSERT INTO leases (namespace, id, created_at) VALUES (?, ?, ?)"),
      insertLabel: db.prepare<[string, string, string, string]>(
        "INSERT INTO lease_labels (namespace, lease_id, key, value) VALUES (?, ?, ?, ?)",
      ),
      list: db.prepare<[string], { id: string; created_at: number }>(
        "SELECT id, created_at FROM leases WHERE namespace = ? ORDER BY id",
      ),
      labels: db.prepare<[string], { lease_id: string; key: string; value: string }>(
        "SELECT lease_id, key, value FROM lease_labels WHERE namespace = ? ORDER BY lease_id, key",
      ),
      labelsOf: db.prepare<[string, string], { key: string; value: string }>(
        "SELECT key, value FROM lease_labels WHERE namespace = ? AND lease_id = ? ORDER BY key",
      ),
      delete: db.prepare<[string, string]>("DELETE FROM leases WHERE namespace = ? AND id = ?"),
      addResource: db.prepare<[string, string, string, string]>(
        "INSERT OR IGNORE INTO lease_resources (namespace, lease_id, type, resource_id) VALUES (?, ?, ?, ?)",
      ),
      deleteResource: db.prepare<[string, string, string, string]>(
        "DELETE FROM lease_resources WHERE namespace = ? AND lease_id = ? AND type = ? AND resource_id = ?",
      ),
      resources: db.prepare<[string, string], { type: string; resource_id: string }>(
        "SELECT type, resource_id FROM lease_resources WHERE namespace = ? AND lease_id = ? ORDER BY type, resource_id",
      ),
    };
  }

  /**
   * Creates a lease; InvalidArgument for an empty id or bad labels, AlreadyExists for a duplicate id. As in
   * containerd 1.6, any non-empty id is accepted (it is a bolt bucket name there, not an identifier), and labels
   * with an empty value are not stored.
   */
  create(namespace: string, options: CreateLeaseOptions): Lease {
    const { id } = options;
    const labels = Object.fromEntries(Object.entries(options.labels ?? {}).filter(([, v]) => v !== ""));
    validateIdentifier(namespace);
    if (id === "") throw new InvalidArgumentError("lease id must be provided");
    validateLabels(labels);
    return this.#db.transaction(() => {
      const now = Date.now();
      this.#stmts.ensureNs.run(namespace, now);
      if (this.#stmts.get.get(namespace, id)) throw new AlreadyExistsError(`lease ${JSON.stringify(id)}`);
      this.#stmts.insert.run(namespace, id, now);
      for (const [k, v] of Object.entries(labels)) this.#stmts.insertLabel.run(namespace, id, k, v);
      return { id, createdAt: new Date(now), labels: { ...labels } };
    })();
  }

  /** The lease, or NotFound. */
  get(namespace: string, id: string): Lease {
    const row = this.#stmts.get.get(namespace, id);
    if (!row) throw new NotFoundError(`lease ${JSON.stringify(id)}`);
    return { id, createdAt: new Date(row.created_at), labels: this.#labelsOf(namespace, id) };
  }

  exists(namespace: string, id: string): boolean {
    return this.#stmts.get.get(namespace, id) !== undefined;
  }

  /** Deletes a lease and its resource set (the resources themselves are left to the collector). */
  delete(namespace: string, id: string): void {
    const { changes } = this.#stmts.delete.run(namespace, id);
    if (changes === 0) throw new NotFoundError(`lease ${JSON.stringify(id)}`);
    this.#hooks.onDelete();
  }

  /** Leases of a namespace in id order, matching any of the filters (`id`, `labels.<key>`). */
  list(namespace: string, filters: readonly string[] = []): Lease[] {
    const filter = parseListFilters(filters);
    const labels = new Map<string, Record<string, string>>();
    for (const { lease_id, key, value } of this.#stmts.labels.all(namespace)) {
      const set = labels.get(lease_id) ?? {};
      set[key] = value;
      labels.set(lease_id, set);
    }
    const out: Lease[] = [];
    for (const row of this.#stmts.list.all(namespace)) {
      const lease = { id: row.id, createdAt: new Date(row.created_at), labels: labels.get(row.id) ?? {} };
      if (filter.match(adaptLease(lease))) out.push(lease);
    }
    return out;
  }

  /** Puts a resource under a lease (idempotent); NotFound when the lease does not exist. */
  addResource(namespace: string, id: string, resource: LeaseResource): void {
    const r = validateLeaseResource(resource);
    this.#db.transaction(() => {
      if (!this.#stmts.get.get(namespace, id)) throw new NotFoundError(`lease ${JSON.stringify(id)}`);
      this.#stmts.addResource.run(namespace, id, r.type, r.id);
    })();
  }

  /** Takes a resource out of a lease; NotFound when the lease does not exist. */
  deleteResource(namespace: string, id: string, resource: LeaseResource): void {
    const r = validateLeaseResource(resource);
    const removed = this.#db.transaction(() => {
      if (!this.#stmts.get.get(namespace, id)) throw new NotFoundError(`lease ${JSON.stringify(id)}`);
      return this.#stmts.deleteResource.run(namespace, id, r.type, r.id).changes;
    })();
    if (removed > 0) this.#hooks.onDelete();
  }

  /** Resources of a lease: content, then ingests, then snapshots; NotFound when the lease does not exist. */
  listResources(namespace: string, id: string): LeaseResource[] {
    if (!this.#stmts.get.get(namespace, id)) throw new NotFoundError(`lease ${JSON.stringify(id)}`);
    return this.#stmts.resources
      .all(namespace, id)
      .map((r) => ({ id: r.resource_id, type: r.type }))
      .sort((a, b) => TYPE_ORDER(a.type) - TYPE_ORDER(b.type));
  }

  /**
   * Adds a resource to the lease named by a call (`Ctx.lease`), inside the caller's transaction. No lease: no-op.
   * A lease that does not exist: NotFound "lease does not exist".
   */
  addToCallLease(namespace: string, lease: string | undefined, type: string, resourceId: string): void {
    if (lease === undefined || lease === "") return;
    if (!this.#stmts.get.get(namespace, lease)) throw new NotFoundError("lease does not exist");
    this.#stmts.addResource.run(namespace, lease, type, resourceId);
  }

  /** Checks that the lease named by a call exists (NotFound "lease does not exist"); no lease: no-op. */
  requireCallLease(namespace: string, lease: string | undefined): void {
    if (lease === undefined || lease === "") return;
    if (!this.#stmts.get.get(namespace, lease)) throw new NotFoundError("lease does not exist");
  }

  /** Removes a resource from the lease named by a call, if any (inside the caller's transaction). */
  removeFromCallLease(namespace: string, lease: string | undefined, type: string, resourceId: string): void {
    if (lease === undefined || lease === "") return;
    this.#stmts.deleteResource.run(namespace, lease, type, resourceId);
  }

  #labelsOf(namespace: string, id: string): Record<string, string> {
    const out: Record<string, string> = {};
    for (const { key, value } of this.#stmts.labelsOf.all(namespace, id)) out[key] = value;
    return out;
  }
}

import { isDigest } from "@berth/oci-spec";
import type { SqliteDatabase } from "../db.js";
import { LABEL_GC_FLAT, leaseExpiry } from "../leases.js";
import type { GcContext, GcNode, GcResourceKind, GcRoot, GcRootSource } from "./types.js";

/** Label: keep this object and everything it references. */
export const LABEL_GC_ROOT = "containerd.io/gc.root";
/** Label prefix: `containerd.io/gc.ref.content[.<name>|/<name>]` = digest. */
export const LABEL_GC_REF_CONTENT = "containerd.io/gc.ref.content";
/** Label prefix: `containerd.io/gc.ref.snapshot.<snapshotter>[/<name>]` = snapshot key. */
export const LABEL_GC_REF_SNAPSHOT = "containerd.io/gc.ref.snapshot.";

/**
 * The nodes that a set of labels references: `gc.ref.content*` (value = digest) and
 * `gc.ref.snapshot.<snapshotter>[/<name>]` (value = snapshot key). Values that cannot name anything are ignored.
 */
export function labelReferences(namespace: string, labels: Iterable<readonly [string, string]>): GcNode[] {
  const out: GcNode[] = [];
  for (const [key, value] of labels) {
    if (key.startsWith(LABEL_GC_REF_CONTENT)) {
      const rest = key.slice(LABEL_GC_REF_CONTENT.length);
      if ((rest === "" || rest.startsWith(".") || rest.startsWith("/")) && isDigest(value)) {
        out.push({ type: "content", namespace, id: value });
      }
    } else if (key.startsWith(LABEL_GC_REF_SNAPSHOT)) {
      const rest = key.slice(LABEL_GC_REF_SNAPSHOT.length);
      const slash = rest.indexOf("/");
      const snapshotter = slash < 0 ? rest : rest.slice(0, slash);
      if (snapshotter !== "" && value !== "") out.push({ type: `snapshots/${snapshotter}`, namespace, id: value });
    }
  }
  return out;
}

interface LeaseRow {
  namespace: string;
  id: string;
}

/** Unexpired leases are roots for their resources (only the resources themselves when `gc.flat`). */
export function leaseRootSource(db: SqliteDatabase): GcRootSource {
  const leases = db.prepare<[], LeaseRow>("SELECT namespace, id FROM leases ORDER BY namespace, id");
  const labels = db.prepare<[], { namespace: string; lease_id: string; key: string; value: string }>(
    "SELECT namespace, lease_id, key, value FROM lease_labels",
  );
  const resources = db.prepare<[string, string], { type: string; resource_id: string }>(
    "SELECT type, resource_id FROM lease_resources WHERE namespace = ? AND lease_id = ?",
  );
  const remove = db.prepare<[string, string]>("DELETE FROM leases WHERE namespace = ? AND id = ?");

  const partition = (now: number) => {
    const byLease = new Map<string, Record<string, string>>();
    for (const l of labels.all()) {
      const k = `${l.namespace}\u0000${l.lease_id}`;
      const set = byLease.get(k) ?? {};
      set[l.key] = l.value;
      byLease.set(k, set);
    }
    const live: Array<LeaseRow & { flat: boolean }> = [];
    const expired: LeaseRow[] = [];
    for (const row of leases.all()) {
      const set = byLease.get(`${row.namespace}\u0000${row.id}`) ?? {};
      const expiry = leaseExpiry(set);
      if (expiry !== undefined && expiry <= now) expired.push(row);
      else live.push({ ...row, flat: Object.hasOwn(set, LABEL_GC_FLAT) });
    }
    return { live, expired };
  };

  return {
    name: "leases",
    *roots(gc: GcContext): Iterable<GcRoot> {
      for (const lease of partition(gc.now).live) {
        for (const r of resources.all(lease.namespace, lease.id)) {
          yield { node: { type: r.type, namespace: lease.namespace, id: r.resource_id }, flat: lease.flat };
        }
      }
    },
    sweep(gc: GcContext) {
      const { expired } = partition(gc.now);
      for (const row of expired) remove.run(row.namespace, row.id);
      return { leases: expired.length };
    },
  };
}

/** Content blobs labelled `containerd.io/gc.root`, and ingests that have not expired. */
export function contentRootSource(db: SqliteDatabase): GcRootSource {
  const rootBlobs = db.prepare<[string], { namespace: string; digest: string }>(
    "SELECT namespace, digest FROM content_labels WHERE key = ?",
  );
  const liveIngests = db.prepare<[number], { namespace: string; ref: string }>(
    "SELECT namespace, ref FROM content_ingests WHERE expires_at IS NOT NULL AND expires_at > ?",
  );
  return {
    name: "content",
    *roots(gc: GcContext): Iterable<GcRoot> {
      for (const r of rootBlobs.all(LABEL_GC_ROOT)) {
        yield { node: { type: "content", namespace: r.namespace, id: r.digest } };
      }
      for (const r of liveIngests.all(gc.now)) yield { node: { type: "ingests", namespace: r.namespace, id: r.ref } };
    },
  };
}

/** Content blob records: their `gc.ref.*` labels are their edges. */
export function contentResourceKind(db: SqliteDatabase, onRemove: () => void = () => {}): GcResourceKind {
  const labels = db.prepare<[string, string], { key: string; value: string }>(
    "SELECT key, value FROM content_labels WHERE namespace = ? AND digest = ?",
  );
  const all = db.prepare<[], { namespace: string; digest: string }>("SELECT namespace, digest FROM content_blobs");
  const remove = db.prepare<[string, string]>("DELETE FROM content_blobs WHERE namespace = ? AND digest = ?");
  return {
    type: "content",
    references(_gc, node) {
      return labelReferences(
        node.namespace,
        labels.all(node.namespace, node.id).map((l) => [l.key, l.value] as const),
      );
    },
    records() {
      return all.all().map((r) => ({ type: "content", namespace: r.namespace, id: r.digest }));
    },
    remove(_gc, node) {
      remove.run(node.namespace, node.id);
      onRemove();
    },
  };
}

/** Ingest records: an ingest keeps its expected blob. */
export function ingestResourceKind(db: SqliteDatabase, onRemove: () => void = () => {}): GcResourceKind {
  const expected = db.prepare<[string, string], { expected: string }>(
    "SELECT expected FROM content_ingests WHERE namespace = ? AND ref = ?",
  );
  const all = db.prepare<[], { namespace: string; ref: string }>("SELECT namespace, ref FROM content_ingests");
  const remove = db.prepare<[string, string]>("DELETE FROM content_ingests WHERE namespace = ? AND ref = ?");
  return {
    type: "ingests",
    references(_gc, node) {
      const row = expected.get(node.namespace, node.id);
      return row && isDigest(row.expected) ? [{ type: "content", namespace: node.namespace, id: row.expected }] : [];
    },
    records() {
      return all.all().map((r) => ({ type: "ingests", namespace: r.namespace, id: r.ref }));
    },
    remove(_gc, node) {
      remove.run(node.namespace, node.id);
      onRemove();
    },
  };
}

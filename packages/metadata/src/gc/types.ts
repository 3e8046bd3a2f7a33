import type { SqliteDatabase } from "../db.js";

/**
 * An object the collector knows about. `type` is the lease resource type of the object: `content` (id =
 * digest), `ingests` (id = client ref) or `snapshots/<snapshotter>` (id = snapshot key); other object kinds
 * may add their own types.
 */
export interface GcNode {
  readonly type: string;
  readonly namespace: string;
  readonly id: string;
}

/** A root: kept with everything it references, unless `flat` (a `gc.flat` lease: the object alone is kept). */
export interface GcRoot {
  readonly node: GcNode;
  readonly flat?: boolean;
}

/** What a collection sees: the database (inside the collection's transaction) and its clock. */
export interface GcContext {
  readonly db: SqliteDatabase;
  /** Milliseconds since the epoch at the start of the collection. */
  readonly now: number;
}

/**
 * A source of roots (leases, images, containers, …). Object kinds that are never collected themselves but
 * keep others alive register one with `MetadataDb.addGcRootSource`.
 */
export interface GcRootSource {
  readonly name: string;
  /** Every root, in every namespace. Runs inside the collection's transaction. */
  roots(gc: GcContext): Iterable<GcRoot>;
  /**
   * Optional: deletes records of the source itself that are no longer live (expired leases), after marking,
   * in the same transaction; returns how many records of which kind it removed.
   */
  sweep?(gc: GcContext): Readonly<Record<string, number>>;
}

/**
 * A kind of collectable record (content blobs, ingests, later snapshots). `type` is a node type (`content`) or
 * a prefix ending in `/` that covers a family of types (`snapshots/`).
 */
export interface GcResourceKind {
  readonly type: string;
  /** The nodes a live record keeps alive (its `gc.ref.*` labels, an ingest's expected digest, a parent). */
  references(gc: GcContext, node: GcNode): Iterable<GcNode>;
  /** Every record of the kind, for the sweep. */
  records(gc: GcContext): Iterable<GcNode>;
  /** Deletes one unreachable record (inside the collection's transaction). */
  remove(gc: GcContext, node: GcNode): void;
}

/** What one collection did. */
export interface GcStats {
  /** Records removed from the database, by node type (`content`, `ingests`, `leases`, …). */
  readonly removed: Readonly<Record<string, number>>;
  /** Blobs removed from the content backend because no namespace references them any more. */
  readonly blobsDeleted: number;
  /** Backend ingests aborted because no namespace references them any more. */
  readonly ingestsAborted: number;
  /** Backend snapshots removed because no namespace records them any more, by snapshotter. */
  readonly snapshotsRemoved?: Readonly<Record<string, number>>;
  /** Time spent marking and sweeping the database (under the transaction), in milliseconds. */
  readonly metaDurationMs: number;
  /** Total time, backend cleanup included, in milliseconds. */
  readonly durationMs: number;
}

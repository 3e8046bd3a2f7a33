import { performance } from "node:perf_hooks";
import type { ContentStore } from "@berth/content-store";
import type { SqliteStatement } from "../db.js";
import { isNotFound } from "@berth/errdefs";
import { type Logger, silentLogger } from "@berth/plugin";
import type { MetadataDb } from "../metadata.js";
import type { GcContext, GcNode, GcResourceKind, GcStats } from "./types.js";

export interface GarbageCollectorOptions {
  readonly log?: Logger;
  /** The clock (tests). */
  readonly now?: () => number;
}

const nodeKey = (n: GcNode): string => `${n.type}\u0000${n.namespace}\u0000${n.id}`;

/** The namespace the collector passes to the shared backend (which is not namespaced). */
const BACKEND_CTX = { namespace: "berth-gc" } as const;

/**
 * Mark and sweep over the metadata database (containerd's `metadata.DB.GarbageCollect`): marks everything
 * reachable from the registered roots, deletes every other record in the same transaction, then removes the
 * blobs and backend ingests that no namespace references any more.
 */
export class GarbageCollector {
  readonly #db: MetadataDb;
  readonly #log: Logger;
  readonly #now: () => number;
  #blobDigests: SqliteStatement<[], { digest: string }> | undefined;
  #ingestRefs: SqliteStatement<[], { backend_ref: string }> | undefined;

  constructor(db: MetadataDb, options: GarbageCollectorOptions = {}) {
    this.#db = db;
    this.#log = options.log ?? silentLogger;
    this.#now = options.now ?? Date.now;
  }

  /** Runs one collection; collections (and commits that put blobs on disk) are serialized by the GC lock. */
  collect(): Promise<GcStats> {
    return this.#db.gcLock.exclusive(async () => {
      const start = performance.now();
      const gc: GcContext = { db: this.#db.db, now: this.#now() };
      const removed = this.#db.db.transaction(() => this.#markAndSweep(gc)).immediate();
      const metaDurationMs = performance.now() - start;
      const { blobsDeleted, ingestsAborted } = await this.#cleanBackend();
      const snapshotsRemoved = await this.#db.collectSnapshotterBackends(this.#log);
      const stats: GcStats = {
        removed,
        blobsDeleted,
        ingestsAborted,
        snapshotsRemoved,
        metaDurationMs,
        durationMs: performance.now() - start,
      };
      const total =
        Object.values(removed).reduce((a, b) => a + b, 0) +
        Object.values(snapshotsRemoved).reduce((a, b) => a + b, 0) +
        blobsDeleted +
        ingestsAborted;
      const fields = { ...stats, durationMs: round(stats.durationMs), metaDurationMs: round(metaDurationMs) };
      if (total > 0) this.#log.info(fields, "garbage collected");
      else this.#log.debug(fields, "garbage collected");
      return stats;
    });
  }

  #markAndSweep(gc: GcContext): Record<string, number> {
    const kinds = this.#db.gcResourceKinds();
    const kindOf = (type: string): GcResourceKind | undefined => {
      const slash = type.indexOf("/");
      const family = slash < 0 ? undefined : type.slice(0, slash + 1);
      return kinds.find((k) => k.type === type) ?? kinds.find((k) => k.type === family);
    };

    // Mark: `reached` nodes are kept; `scanned` ones also had their references followed. A node reached only
    // through a gc.flat lease is kept without following its references.
    const reached = new Set<string>();
    const scanned = new Set<string>();
    const queue: GcNode[] = [];
    const visit = (node: GcNode, flat: boolean): void => {
      const key = nodeKey(node);
      reached.add(key);
      if (flat || scanned.has(key)) return;
      scanned.add(key);
      queue.push(node);
    };
    for (const source of this.#db.gcRootSources()) {
      for (const root of source.roots(gc)) visit(root.node, root.flat === true);
    }
    for (let node = queue.pop(); node !== undefined; node = queue.pop()) {
      const kind = kindOf(node.type);
      if (kind === undefined) continue; // e.g. snapshots before any snapshotter registers its records
      for (const ref of kind.references(gc, node)) visit(ref, false);
    }

    // Sweep.
    const removed: Record<string, number> = {};
    const count = (type: string, n: number): void => {
      if (n > 0) removed[type] = (removed[type] ?? 0) + n;
    };
    for (const kind of kinds) {
      const dead = [...kind.records(gc)].filter((node) => !reached.has(nodeKey(node)));
      for (const node of dead) kind.remove(gc, node);
      for (const node of dead) count(node.type, 1);
    }
    for (const source of this.#db.gcRootSources()) {
      for (const [type, n] of Object.entries(source.sweep?.(gc) ?? {})) count(type, n);
    }
    return removed;
  }

  /** Deletes blobs and aborts backend ingests that no namespace references (under the exclusive GC lock). */
  async #cleanBackend(): Promise<{ blobsDeleted: number; ingestsAborted: number }> {
    const backend = this.#db.contentBackend;
    if (backend === undefined || !this.#db.takeContentDirty()) return { blobsDeleted: 0, ingestsAborted: 0 };
    try {
      return await this.#sweepBackend(backend);
    } catch (err) {
      this.#db.markContentDirty(); // try again next time
      throw err;
    }
  }

  async #sweepBackend(backend: ContentStore): Promise<{ blobsDeleted: number; ingestsAborted: number }> {
    const db = this.#db.db;

    // Read the backend first, then the records: anything the backend lists was recorded before it existed.
    const blobs: string[] = [];
    await backend.walk(BACKEND_CTX, (info) => {
      blobs.push(info.digest);
    });
    this.#blobDigests ??= db.prepare<[], { digest: string }>("SELECT DISTINCT digest FROM content_blobs");
    const referenced = new Set(this.#blobDigests.all().map((r) => r.digest));
    let blobsDeleted = 0;
    for (const digest of blobs) {
      if (referenced.has(digest)) continue;
      try {
        await backend.delete(BACKEND_CTX, digest);
        blobsDeleted++;
        this.#log.debug({ digest }, "removed blob");
      } catch (err) {
        if (isNotFound(err)) continue;
        this.#db.markContentDirty();
        this.#log.warn({ digest, err }, "failed to remove blob");
      }
    }

    const statuses = await backend.listStatuses(BACKEND_CTX);
    this.#ingestRefs ??= db.prepare<[], { backend_ref: string }>("SELECT backend_ref FROM content_ingests");
    const ingests = new Set(this.#ingestRefs.all().map((r) => r.backend_ref));
    let ingestsAborted = 0;
    for (const status of statuses) {
      if (ingests.has(status.ref)) continue;
      try {
        await backend.abort(BACKEND_CTX, status.ref);
        ingestsAborted++;
        this.#log.debug({ ref: status.ref }, "aborted ingest");
      } catch (err) {
        if (isNotFound(err)) continue;
        this.#db.markContentDirty();
        this.#log.warn({ ref: status.ref, err }, "failed to abort ingest");
      }
    }
    return { blobsDeleted, ingestsAborted };
  }
}

const round = (ms: number): number => Math.round(ms * 1000) / 1000;

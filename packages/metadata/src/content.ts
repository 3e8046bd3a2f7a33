import type {
  CommitOptions,
  ContentStore,
  Ctx,
  DescriptorLike,
  Info,
  ReaderAt,
  Status,
  WalkFn,
  Writer,
  WriterOptions,
} from "@berth/content-store";
import {
  AlreadyExistsError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  isAlreadyExists,
  isNotFound,
} from "@berth/errdefs";
import { adaptContent, adaptStatus, parseAll } from "@berth/filters";
import { requireNamespace, validateLabels } from "@berth/identifiers";
import { digestProblem } from "@berth/oci-spec";
import type { MetadataDb } from "./metadata.js";

export interface NamespacedContentOptions {
  /** How long an ingest that is not in a lease is kept (containerd: 24 h). */
  readonly ingestExpiryMs?: number;
  /** The clock (tests). */
  readonly now?: () => number;
}

export const DEFAULT_INGEST_EXPIRY_MS = 24 * 60 * 60 * 1000;

interface BlobRow {
  digest: string;
  size: number;
  created_at: number;
  updated_at: number;
}

interface IngestRow {
  ref: string;
  backend_ref: string;
  expected: string;
  expires_at: number | null;
  virtual_size: number | null;
  created_at: number;
}

/** Registers the "namespace must be empty" check for content records. */
export function registerContentProbe(db: MetadataDb): void {
  const any = db.db.prepare<[string], { one: number }>(
    "SELECT 1 AS one FROM content_blobs WHERE namespace = ? LIMIT 1",
  );
  db.namespaces.addContentProbe((namespace) => (any.get(namespace) ? "content" : undefined));
}

/**
 * containerd's metadata content store over a shared backend: blobs are stored once, but a namespace sees only
 * the blobs committed (or linked) in it, with its own labels; ingests are namespaced (backend ref
 * `<namespace>/<seq>/<ref>`). Blobs and ingests made in a call with `Ctx.lease` join that lease.
 */
export function createNamespacedContentStore(
  db: MetadataDb,
  backend: ContentStore,
  options: NamespacedContentOptions = {},
): ContentStore {
  return new NamespacedContentStore(db, backend, options);
}

function checkDigest(digest: string): void {
  const problem = digestProblem(digest);
  if (problem !== undefined) throw new InvalidArgumentError(`invalid digest ${JSON.stringify(digest)}: ${problem}`);
}

const backendCtx = (ctx: Ctx): Ctx =>
  ctx.signal === undefined ? { namespace: ctx.namespace } : { namespace: ctx.namespace, signal: ctx.signal };

class NamespacedContentStore implements ContentStore {
  readonly #meta: MetadataDb;
  readonly #backend: ContentStore;
  readonly #expiry: number;
  readonly #now: () => number;
  readonly #q;

  constructor(meta: MetadataDb, backend: ContentStore, options: NamespacedContentOptions) {
    this.#meta = meta;
    this.#backend = backend;
    this.#expiry = options.ingestExpiryMs ?? DEFAULT_INGEST_EXPIRY_MS;
    this.#now = options.now ?? Date.now;
    const db = meta.db;
    this.#q = {
      blob: db.prepare<[string, string], BlobRow>(
        "SELECT digest, size, created_at, updated_at FROM content_blobs WHERE namespace = ? AND digest = ?",
      ),
      blobs: db.prepare<[string], BlobRow>(
        "SELECT digest, size, created_at, updated_at FROM content_blobs WHERE namespace = ? ORDER BY digest",
      ),
      elsewhere: db.prepare<[string, string], { size: number }>(
        "SELECT size FROM content_blobs WHERE digest = ? AND namespace <> ? LIMIT 1",
      ),
      insertBlob: db.prepare<[string, string, number, number, number]>(
        "INSERT INTO content_blobs (namespace, digest, size, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
      ),
      touchBlob: db.prepare<[number, string, string]>(
        "UPDATE content_blobs SET updated_at = ? WHERE namespace = ? AND digest = ?",
      ),
      deleteBlob: db.prepare<[string, string]>("DELETE FROM content_blobs WHERE namespace = ? AND digest = ?"),
      labels: db.prepare<[string, string], { key: string; value: string }>(
        "SELECT key, value FROM content_labels WHERE namespace = ? AND digest = ? ORDER BY key",
      ),
      nsLabels: db.prepare<[string], { digest: string; key: string; value: string }>(
        "SELECT digest, key, value FROM content_labels WHERE namespace = ?",
      ),
      setLabel: db.prepare<[string, string, string, string]>(
        "INSERT INTO content_labels (namespace, digest, key, value) VALUES (?, ?, ?, ?) ON CONFLICT (namespace, digest, key) DO UPDATE SET value = excluded.value",
      ),
      deleteLabel: db.prepare<[string, string, string]>(
        "DELETE FROM content_labels WHERE namespace = ? AND digest = ? AND key = ?",
      ),
      deleteLabels: db.prepare<[string, string]>("DELETE FROM content_labels WHERE namespace = ? AND digest = ?"),
      ingest: db.prepare<[string, string], IngestRow>(
        "SELECT ref, backend_ref, expected, expires_at, virtual_size, created_at FROM content_ingests WHERE namespace = ? AND ref = ?",
      ),
      ingests: db.prepare<[string], IngestRow>(
        "SELECT ref, backend_ref, expected, expires_at, virtual_size, created_at FROM content_ingests WHERE namespace = ? ORDER BY ref",
      ),
      insertIngest: db.prepare<[string, string, string, number]>(
        "INSERT INTO content_ingests (namespace, ref, backend_ref, created_at) VALUES (?, ?, ?, ?)",
      ),
      updateIngest: db.prepare<[string | null, number | null, number | null, string, string]>(
        "UPDATE content_ingests SET expected = COALESCE(?, expected), expires_at = ?, virtual_size = ? WHERE namespace = ? AND ref = ?",
      ),
      setVirtual: db.prepare<[number | null, string, string]>(
        "UPDATE content_ingests SET virtual_size = ? WHERE namespace = ? AND ref = ?",
      ),
      deleteIngest: db.prepare<[string, string]>("DELETE FROM content_ingests WHERE namespace = ? AND ref = ?"),
      unleaseIngest: db.prepare<[string, string]>(
        "DELETE FROM lease_resources WHERE namespace = ? AND type = 'ingests' AND resource_id = ?",
      ),
      nextSeq: db.prepare<[string], { value: number }>(
        "INSERT INTO sequences (name, value) VALUES (?, 1) ON CONFLICT (name) DO UPDATE SET value = value + 1 RETURNING value",
      ),
    };
  }

  // ---- Manager ----

  async info(ctx: Ctx, digest: string): Promise<Info> {
    const ns = requireNamespace(ctx.namespace);
    checkDigest(digest);
    const row = this.#q.blob.get(ns, digest);
    if (!row) throw new NotFoundError(`content digest ${digest}`);
    return this.#toInfo(row, this.#labels(ns, digest));
  }

  async update(ctx: Ctx, info: Pick<Info, "digest" | "labels">, fieldpaths?: readonly string[]): Promise<Info> {
    const ns = requireNamespace(ctx.namespace);
    const { digest } = info;
    checkDigest(digest);
    const given = info.labels ?? {};
    validateLabels(given);
    const paths = fieldpaths ?? [];
    for (const path of paths) {
      if (path !== "labels" && !path.startsWith("labels.")) {
        throw new InvalidArgumentError(
          `cannot update ${JSON.stringify(path)} field on content info ${JSON.stringify(digest)}`,
        );
      }
    }
    const updated = this.#meta.db.transaction(() => {
      const row = this.#q.blob.get(ns, digest);
      if (!row) throw new NotFoundError(`content digest ${digest}`);
      const replaceAll = (): void => {
        this.#q.deleteLabels.run(ns, digest);
        for (const [k, v] of Object.entries(given)) if (v !== "") this.#q.setLabel.run(ns, digest, k, v);
      };
      if (paths.length === 0) replaceAll();
      for (const path of paths) {
        if (path === "labels") {
          replaceAll();
          continue;
        }
        const key = path.slice("labels.".length);
        const value = Object.hasOwn(given, key) ? given[key] : undefined;
        if (value === undefined || value === "") this.#q.deleteLabel.run(ns, digest, key);
        else this.#q.setLabel.run(ns, digest, key, value);
      }
      const now = this.#now();
      this.#q.touchBlob.run(now, ns, digest);
      return this.#toInfo({ ...row, updated_at: now }, this.#labels(ns, digest));
    })();
    this.#meta.notifyChange("mutate");
    return updated;
  }

  async walk(ctx: Ctx, fn: WalkFn, filters?: readonly string[]): Promise<void> {
    const ns = requireNamespace(ctx.namespace);
    const filter = parseAll(filters ?? []);
    const rows = this.#q.blobs.all(ns);
    const labels = new Map<string, Record<string, string>>();
    for (const l of this.#q.nsLabels.all(ns)) {
      const set = labels.get(l.digest) ?? {};
      set[l.key] = l.value;
      labels.set(l.digest, set);
    }
    for (const row of rows) {
      ctx.signal?.throwIfAborted();
      const info = this.#toInfo(row, labels.get(row.digest) ?? {});
      if (filter.match(adaptContent(info))) await fn(info);
    }
  }

  /** Removes the namespace's record only; the collector removes the blob once no namespace references it. */
  async delete(ctx: Ctx, digest: string): Promise<void> {
    const ns = requireNamespace(ctx.namespace);
    checkDigest(digest);
    this.#meta.db.transaction(() => {
      if (this.#q.deleteBlob.run(ns, digest).changes === 0) throw new NotFoundError(`content digest ${digest}`);
      this.#meta.leases.removeFromCallLease(ns, ctx.lease, "content", digest);
    })();
    this.#meta.markContentDirty();
    this.#meta.notifyChange("delete");
  }

  // ---- Provider ----

  async readerAt(ctx: Ctx, desc: DescriptorLike & { digest: string }): Promise<ReaderAt> {
    const ns = requireNamespace(ctx.namespace);
    checkDigest(desc.digest);
    const row = this.#q.blob.get(ns, desc.digest);
    if (!row) throw new NotFoundError(`content digest ${desc.digest}`);
    return this.#backend.readerAt(backendCtx(ctx), { ...desc, size: row.size });
  }

  // ---- IngestManager ----

  async status(ctx: Ctx, ref: string): Promise<Status> {
    const ns = requireNamespace(ctx.namespace);
    const row = this.#q.ingest.get(ns, ref);
    if (!row) throw new NotFoundError(`ref ${ref}`);
    return this.#statusOf(ctx, row);
  }

  async listStatuses(ctx: Ctx, filters?: readonly string[]): Promise<Status[]> {
    const ns = requireNamespace(ctx.namespace);
    const filter = parseAll(filters ?? []);
    const out: Status[] = [];
    for (const row of this.#q.ingests.all(ns)) {
      if (!filter.match(adaptStatus({ ref: row.ref }))) continue;
      try {
        out.push(await this.#statusOf(ctx, row));
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    }
    return out;
  }

  async abort(ctx: Ctx, ref: string): Promise<void> {
    const ns = requireNamespace(ctx.namespace);
    const row = this.#meta.db.transaction(() => {
      const found = this.#q.ingest.get(ns, ref);
      if (!found) throw new NotFoundError(`ref ${ref}`);
      this.#q.deleteIngest.run(ns, ref);
      this.#q.unleaseIngest.run(ns, ref);
      return found;
    })();
    this.#meta.markContentDirty(); // if the backend abort below fails, the collector retries it
    try {
      await this.#backend.abort(backendCtx(ctx), row.backend_ref);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    this.#meta.notifyChange("delete");
  }

  // ---- Ingester ----

  async writer(ctx: Ctx, options: WriterOptions): Promise<Writer> {
    const ns = requireNamespace(ctx.namespace);
    const { ref } = options;
    if (ref === "") throw new InvalidArgumentError("ref must not be empty");
    const desc = options.desc ?? {};
    const expected = desc.digest || undefined;
    if (expected !== undefined) checkDigest(expected);
    const wantSize = desc.size !== undefined && desc.size > 0 ? desc.size : undefined;

    // A blob another namespace already has (and the backend holds) is linked, not copied: a virtual writer.
    let shared: number | undefined;
    if (expected !== undefined && !this.#q.blob.get(ns, expected) && this.#q.elsewhere.get(expected, ns)) {
      try {
        const onDisk = await this.#backend.info(backendCtx(ctx), expected);
        if (wantSize === undefined || wantSize === onDisk.size) shared = onDisk.size;
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    }

    const now = this.#now();
    const opened = this.#meta.db.transaction(() => {
      this.#meta.namespaces.ensure(ns);
      const leases = this.#meta.leases;
      leases.requireCallLease(ns, ctx.lease);
      if (expected !== undefined && this.#q.blob.get(ns, expected)) {
        // Keep it from being collected while the caller's lease lasts.
        leases.addToCallLease(ns, ctx.lease, "content", expected);
        return undefined;
      }
      let row = this.#q.ingest.get(ns, ref);
      if (!row) {
        const seq = this.#q.nextSeq.get(`content_ingests/${ns}`)!.value;
        this.#q.insertIngest.run(ns, ref, `${ns}/${seq}/${ref}`, now);
        row = this.#q.ingest.get(ns, ref)!;
      }
      const leased = ctx.lease !== undefined && ctx.lease !== "";
      leases.addToCallLease(ns, ctx.lease, "ingests", ref);
      this.#q.updateIngest.run(expected ?? null, leased ? null : now + this.#expiry, shared ?? null, ns, ref);
      return { backendRef: row.backend_ref, startedAt: row.created_at, expected: expected ?? row.expected };
    })();
    if (opened === undefined) throw new AlreadyExistsError(`content ${expected}`);
    this.#meta.notifyChange("mutate");

    const state: WriterState = {
      ctx,
      namespace: ns,
      ref,
      backendRef: opened.backendRef,
      startedAt: new Date(opened.startedAt),
      expected: opened.expected,
      size: desc.size,
      mediaType: desc.mediaType,
      virtual: shared === undefined || expected === undefined ? undefined : { digest: expected, size: shared },
      backend: undefined,
    };
    if (state.virtual === undefined) state.backend = await this.#openBackend(state);
    return new NamespacedWriter(this, state);
  }

  // ---- internals used by the writer ----

  /** The backend writer for an ingest; the expected digest is withheld so that only the namespace decides. */
  async #openBackend(state: WriterState): Promise<Writer> {
    const desc: DescriptorLike = {
      ...(state.size !== undefined ? { size: state.size } : {}),
      ...(state.mediaType !== undefined ? { mediaType: state.mediaType } : {}),
    };
    return this.#backend.writer(backendCtx(state.ctx), { ref: state.backendRef, desc });
  }

  /** Turns a virtual writer into a real one (the caller wants to write): copies the blob when `copy`. */
  async materialize(state: WriterState, copy: boolean): Promise<void> {
    const virtual = state.virtual;
    if (virtual === undefined) return;
    const w = await this.#openBackend(state);
    try {
      if ((await w.status()).offset > 0) await w.truncate(0);
      if (copy) {
        const reader = await this.#backend.readerAt(backendCtx(state.ctx), virtual);
        try {
          for await (const chunk of reader.stream()) await w.write(chunk);
        } finally {
          await reader.close();
        }
      }
    } catch (err) {
      await w.close();
      throw err;
    }
    state.backend = w;
    state.virtual = undefined;
    this.#q.setVirtual.run(null, state.namespace, state.ref);
  }

  virtualStatus(state: WriterState, virtual: { size: number; digest: string }): Status {
    return {
      ref: state.ref,
      offset: virtual.size,
      total: virtual.size,
      expected: virtual.digest,
      startedAt: state.startedAt,
      updatedAt: state.startedAt,
    };
  }

  async commit(state: WriterState, size: number, expected: string | undefined, options?: CommitOptions): Promise<void> {
    const labels = options?.labels ?? {};
    validateLabels(labels);
    if (expected) checkDigest(expected);
    const bctx = backendCtx(state.ctx);
    await this.#meta.gcLock.shared(async () => {
      let digest: string;
      let blobSize: number;
      const virtual = state.virtual;
      if (virtual !== undefined) {
        if (size > 0 && size !== virtual.size) {
          throw new FailedPreconditionError(`unexpected commit size ${virtual.size}, expected ${size}`);
        }
        if (expected && expected !== virtual.digest) {
          throw new FailedPreconditionError(`unexpected commit digest ${virtual.digest}, expected ${expected}`);
        }
        await this.#backend.info(bctx, virtual.digest); // still on disk (NotFound otherwise)
        try {
          await this.#backend.abort(bctx, state.backendRef);
        } catch (err) {
          if (!isNotFound(err)) throw err;
        }
        digest = virtual.digest;
        blobSize = virtual.size;
      } else {
        const w = state.backend;
        if (w === undefined) throw new FailedPreconditionError(`writer ${state.ref} is closed`);
        const before = await w.status();
        let onDisk = false;
        try {
          await w.commit(size, expected || undefined);
        } catch (err) {
          if (!isAlreadyExists(err)) throw err;
          onDisk = true;
        }
        digest = expected || w.digest();
        blobSize = onDisk ? (await this.#backend.info(bctx, digest)).size : before.offset;
      }

      const now = this.#now();
      const { namespace: ns, ref } = state;
      const record = this.#meta.db.transaction(() => {
        this.#meta.namespaces.ensure(ns);
        this.#q.deleteIngest.run(ns, ref);
        this.#q.unleaseIngest.run(ns, ref);
        this.#meta.leases.addToCallLease(ns, state.ctx.lease, "content", digest);
        if (this.#q.blob.get(ns, digest)) return true;
        this.#q.insertBlob.run(ns, digest, blobSize, now, now);
        for (const [k, v] of Object.entries(labels)) if (v !== "") this.#q.setLabel.run(ns, digest, k, v);
        return false;
      });
      let existed: boolean;
      try {
        existed = record();
      } catch (err) {
        this.#meta.markContentDirty(); // the blob is on disk without a record
        throw err;
      }
      if (existed) throw new AlreadyExistsError(`content ${digest}`);
    });
  }

  async statusOfWriter(state: WriterState): Promise<Status> {
    if (state.virtual !== undefined) return this.virtualStatus(state, state.virtual);
    const w = state.backend;
    if (w === undefined) throw new FailedPreconditionError(`writer ${state.ref} is closed`);
    const st = await w.status();
    return { ...st, ref: state.ref, expected: state.expected || st.expected };
  }

  async #statusOf(ctx: Ctx, row: IngestRow): Promise<Status> {
    if (row.virtual_size !== null && row.expected !== "") {
      const at = new Date(row.created_at);
      return {
        ref: row.ref,
        offset: row.virtual_size,
        total: row.virtual_size,
        expected: row.expected,
        startedAt: at,
        updatedAt: at,
      };
    }
    const st = await this.#backend.status(backendCtx(ctx), row.backend_ref);
    return { ...st, ref: row.ref, expected: row.expected || st.expected };
  }

  #labels(ns: string, digest: string): Record<string, string> {
    const out: Record<string, string> = {};
    for (const { key, value } of this.#q.labels.all(ns, digest)) out[key] = value;
    return out;
  }

  #toInfo(row: BlobRow, labels: Record<string, string>): Info {
    return {
      digest: row.digest,
      size: row.size,
      createdAt: new Date(row.created_at),
      updatedAt: new Date(row.updated_at),
      labels,
    };
  }
}

interface WriterState {
  readonly ctx: Ctx;
  readonly namespace: string;
  readonly ref: string;
  readonly backendRef: string;
  readonly startedAt: Date;
  readonly expected: string;
  readonly size: number | undefined;
  readonly mediaType: string | undefined;
  virtual: { readonly digest: string; readonly size: number } | undefined;
  backend: Writer | undefined;
}

class NamespacedWriter implements Writer {
  readonly #store: NamespacedContentStore;
  readonly #state: WriterState;

  constructor(store: NamespacedContentStore, state: WriterState) {
    this.#store = store;
    this.#state = state;
  }

  get ref(): string {
    return this.#state.ref;
  }

  status(): Promise<Status> {
    return this.#store.statusOfWriter(this.#state);
  }

  digest(): string {
    const { virtual, backend } = this.#state;
    if (virtual !== undefined) return virtual.digest;
    if (backend === undefined) throw new FailedPreconditionError(`writer ${this.#state.ref} is closed`);
    return backend.digest();
  }

  async write(data: Uint8Array): Promise<number> {
    if (this.#state.virtual !== undefined) {
      if (data.length === 0) return this.#state.virtual.size;
      await this.#store.materialize(this.#state, true);
    }
    return this.#backend().write(data);
  }

  async truncate(size: 0): Promise<void> {
    if (this.#state.virtual !== undefined) {
      await this.#store.materialize(this.#state, false);
      return;
    }
    await this.#backend().truncate(size);
  }

  commit(size: number, expected: string | undefined, options?: CommitOptions): Promise<void> {
    return this.#store.commit(this.#state, size, expected, options);
  }

  async close(): Promise<void> {
    const w = this.#state.backend;
    this.#state.backend = undefined;
    this.#state.virtual = undefined;
    await w?.close();
  }

  #backend(): Writer {
    const w = this.#state.backend;
    if (w === undefined) throw new FailedPreconditionError(`writer ${this.#state.ref} is closed`);
    return w;
  }
}

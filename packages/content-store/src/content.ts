/**
 * The content store interfaces (containerd's core/content): content-addressed blobs, resumable ingests by
 * ref, labels, walk. Small interfaces that compose into ContentStore. No Connect types here.
 */

/** The context every call takes first (containerd's context.Context). */
export interface Ctx {
  readonly namespace: string;
  readonly signal?: AbortSignal;
  /** Lease from the `containerd-lease` header: new content and ingests made in the call join it. */
  readonly lease?: string;
}

export interface Info {
  readonly digest: string;
  readonly size: number;
  readonly createdAt: Date;
  readonly updatedAt: Date;
  readonly labels: Record<string, string>;
}

export interface Status {
  readonly ref: string;
  readonly offset: number;
  /** 0 when unknown. */
  readonly total: number;
  /** Expected digest, "" when unknown. */
  readonly expected: string;
  readonly startedAt: Date;
  readonly updatedAt: Date;
}

/** What a reader or writer is about: a digest and a size (size < 0 or 0 = unknown for writers). */
export interface DescriptorLike {
  readonly digest?: string;
  readonly size?: number;
  readonly mediaType?: string;
}

export interface ReaderAt {
  readonly size: number;
  /**
   * Reads up to `length` bytes at `offset` into a new buffer: shorter only at the end, empty at or past the end
   * (the gRPC service, not the reader, maps an offset past the end to OutOfRange). Negative values are
   * InvalidArgument.
   */
  readAt(offset: number, length: number): Promise<Uint8Array>;
  /** Streams from `offset` to the end (or `length` bytes; a negative length means to the end) in chunks. */
  stream(offset?: number, length?: number): AsyncIterable<Uint8Array>;
  close(): Promise<void>;
}

export interface CommitOptions {
  readonly labels?: Record<string, string>;
}

export interface Writer {
  readonly ref: string;
  /** Current offset, total, expected digest and times. */
  status(): Promise<Status>;
  /** The digest of everything written so far (the running digest; does not end the hash). */
  digest(): string;
  /** Appends at the current offset; returns the new offset. */
  write(data: Uint8Array): Promise<number>;
  /** Restarts the ingest from 0 (the only truncation containerd supports). */
  truncate(size: 0): Promise<void>;
  /**
   * Verifies size (when > 0) and digest (when given), syncs and moves the data into place atomically.
   * FailedPrecondition on mismatch (nothing is committed; the ingest and the writer stay usable); AlreadyExists
   * when the blob is already there (the ingest is removed: nothing is lost, the blob has the same bytes). The
   * writer is closed after a successful commit or AlreadyExists.
   */
  commit(size: number, expected: string | undefined, options?: CommitOptions): Promise<void>;
  /** Releases the ref lock; the ingest stays on disk, resumable. Idempotent; a no-op after commit. */
  close(): Promise<void>;
}

export interface WriterOptions {
  readonly ref: string;
  readonly desc?: DescriptorLike;
}

export interface Provider {
  /** NotFound when the blob does not exist (in this namespace). */
  readerAt(ctx: Ctx, desc: DescriptorLike & { digest: string }): Promise<ReaderAt>;
}

export interface Ingester {
  /**
   * Opens (or resumes) the ingest for `ref`. Unavailable when another writer holds the ref; AlreadyExists when
   * `desc.digest` is already committed (and visible in this namespace).
   */
  writer(ctx: Ctx, options: WriterOptions): Promise<Writer>;
}

export interface IngestManager {
  status(ctx: Ctx, ref: string): Promise<Status>;
  listStatuses(ctx: Ctx, filters?: readonly string[]): Promise<Status[]>;
  abort(ctx: Ctx, ref: string): Promise<void>;
}

export type WalkFn = (info: Info) => void | Promise<void>;

export interface Manager {
  info(ctx: Ctx, digest: string): Promise<Info>;
  /** Updates labels: `fieldpaths` like `labels` or `labels.<key>`; none = replace all labels. */
  update(ctx: Ctx, info: Pick<Info, "digest" | "labels">, fieldpaths?: readonly string[]): Promise<Info>;
  /** Calls fn for every blob matching any of the filters (all when none), in digest order. */
  walk(ctx: Ctx, fn: WalkFn, filters?: readonly string[]): Promise<void>;
  delete(ctx: Ctx, digest: string): Promise<void>;
}

export type ContentStore = Provider & Ingester & IngestManager & Manager;

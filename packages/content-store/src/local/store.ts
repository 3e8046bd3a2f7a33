import { createHash } from "node:crypto";
import { constants, mkdirSync } from "node:fs";
import {
  type FileHandle,
  mkdir,
  open,
  readFile,
  readdir,
  rename,
  rm,
  stat,
  unlink,
  utimes,
  writeFile,
} from "node:fs/promises";
import { dirname, join } from "node:path";
import {
  AlreadyExistsError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  UnavailableError,
  fromNodeError,
} from "@berth/errdefs";
import { adaptContent, adaptStatus, parseAll } from "@berth/filters";
import { validateLabels } from "@berth/identifiers";
import { type DigestAlgorithm, CanonicalAlgorithm, isDigest, isSupportedAlgorithm, parseDigest } from "@berth/oci-spec";
import type {
  ContentStore,
  Ctx,
  DescriptorLike,
  Info,
  ReaderAt,
  Status,
  WalkFn,
  Writer,
  WriterOptions,
} from "../content.js";
import { applyLabelUpdate } from "../internal/labels.js";
import { formatRFC3339Nano, parseRFC3339Nano } from "../internal/time.js";
import { LocalReader } from "./reader.js";
import { LocalWriter, type WriterHost } from "./writer.js";

export interface LocalStoreOptions {
  /** The store's directory (containerd: `<root>/io.containerd.content.v1.content`); created when missing. */
  readonly root: string;
}

/** The local store: a ContentStore plus the maintenance a daemon needs. */
export interface LocalContentStore extends ContentStore {
  readonly root: string;
  /**
   * Removes ingests not held by a writer whose last update (the later of `updatedat` and the data file's mtime)
   * is before `olderThan`. Returns the refs removed.
   */
  expireIngests(olderThan: Date): Promise<string[]>;
  /** Closes every open writer (their ingests stay, resumable). */
  close(): Promise<void>;
}

interface Lock {
  readonly since: Date;
  writer?: LocalWriter;
}

interface LabelEntry {
  readonly labels: Record<string, string>;
  readonly updatedAt: Date;
}

const HASH_BUFFER_SIZE = 4 << 20;

/** How long an open blob file stays cached after its last reader closed. */
const OPEN_BLOB_IDLE_MS = 2000;
/** Open blob files cached at most (idle ones beyond this are closed, oldest first). */
const OPEN_BLOB_MAX = 64;

/**
 * A committed blob's open file, shared by its readers. Blobs never change after commit, and clients read them in
 * many small calls (ctr's ReaderAt sends one Read per 32 KiB), so re-opening and stat-ing per call would cost
 * more than the read itself. A delete evicts the entry; readers already holding it keep reading, as they would
 * with a file opened before the unlink.
 */
interface OpenBlob {
  readonly digest: string;
  readonly fh: FileHandle;
  readonly size: number;
  refs: number;
  idleSince: number;
  /** Evicted: closed when the last reader lets go. */
  evicted: boolean;
}

/**
 * Opens a content store in containerd's on-disk layout under `root`:
 * `blobs/<alg>/<hex>` (read-only after commit, mtime = commit time) and
 * `ingest/<hex(sha256(ref))>/{ref,data,startedat,updatedat,total}`.
 *
 * Namespaces and leases in the Ctx are ignored here: the metadata layer adds them. Labels live in memory,
 * per digest (containerd's local store keeps none on disk either).
 */
export function createLocalStore(options: LocalStoreOptions): LocalContentStore {
  return new LocalStore(options.root);
}

class LocalStore implements LocalContentStore, WriterHost {
  readonly root: string;
  readonly #locks = new Map<string, Lock>();
  readonly #labels = new Map<string, LabelEntry>();
  /** Expected digests of ingests, by ref (not part of the on-disk layout; known while the process lives). */
  readonly #expected = new Map<string, string>();
  readonly #openBlobs = new Map<string, OpenBlob>();
  /** Bumped by every delete: a file opened before a delete finished is not cached. */
  #deletes = 0;
  #sweeper: ReturnType<typeof setInterval> | undefined;

  constructor(root: string) {
    this.root = root;
    mkdirSync(join(root, "ingest"), { recursive: true });
    mkdirSync(join(root, "blobs"), { recursive: true });
  }

  // ---- paths

  #blobPath(digest: string): string {
    const { algorithm, encoded } = parseDigest(digest);
    return join(this.root, "blobs", algorithm, encoded);
  }

  #ingestDir(ref: string): string {
    return join(this.root, "ingest", createHash("sha256").update(ref).digest("hex"));
  }

  // ---- Provider

  async readerAt(ctx: Ctx, desc: DescriptorLike & { digest: string }): Promise<ReaderAt> {
    ctx.signal?.throwIfAborted();
    const path = this.#blobPath(desc.digest);
    let entry = this.#openBlobs.get(desc.digest);
    if (entry === undefined) {
      const deletes = this.#deletes;
      let fh: FileHandle;
      try {
        fh = await open(path, "r");
      } catch (err) {
        throw blobError(err, desc.digest);
      }
      let size: number;
      try {
        size = (await fh.stat()).size;
      } catch (err) {
        await fh.close().catch(() => {});
        throw fromNodeError(err);
      }
      const cached = this.#openBlobs.get(desc.digest);
      if (cached !== undefined) {
        await fh.close().catch(() => {});
        entry = cached;
      } else {
        entry = { digest: desc.digest, fh, size, refs: 0, idleSince: 0, evicted: deletes !== this.#deletes };
        if (!entry.evicted) this.#cacheOpenBlob(entry);
      }
    }
    const held = entry;
    held.refs++;
    return new LocalReader(held.fh, held.size, () => this.#releaseOpenBlob(held));
  }

  #cacheOpenBlob(entry: OpenBlob): void {
    this.#openBlobs.set(entry.digest, entry);
    if (this.#openBlobs.size > OPEN_BLOB_MAX) this.#sweepOpenBlobs(Number.POSITIVE_INFINITY);
    if (this.#sweeper === undefined) {
      this.#sweeper = setInterval(() => this.#sweepOpenBlobs(OPEN_BLOB_IDLE_MS), OPEN_BLOB_IDLE_MS / 2);
      this.#sweeper.unref();
    }
  }

  async #releaseOpenBlob(entry: OpenBlob): Promise<void> {
    entry.refs--;
    entry.idleSince = performance.now();
    if (entry.refs === 0 && entry.evicted) await entry.fh.close().catch(() => {});
  }

  #evictOpenBlob(digest: string): void {
    const entry = this.#openBlobs.get(digest);
    if (entry === undefined) return;
    this.#openBlobs.delete(digest);
    entry.evicted = true;
    if (entry.refs === 0) void entry.fh.close().catch(() => {});
  }

  /** Closes idle entries unused for `idleMs`; with Infinity, the oldest idle ones until the cache fits. */
  #sweepOpenBlobs(idleMs: number): void {
    const now = performance.now();
    if (idleMs === Number.POSITIVE_INFINITY) {
      const idle = [...this.#openBlobs.values()].filter((e) => e.refs === 0).sort((a, b) => a.idleSince - b.idleSince);
      for (const e of idle) {
        if (this.#openBlobs.size <= OPEN_BLOB_MAX) break;
        this.#evictOpenBlob(e.digest);
      }
    } else {
      for (const e of [...this.#openBlobs.values()]) {
        if (e.refs === 0 && now - e.idleSince >= idleMs) this.#evictOpenBlob(e.digest);
      }
    }
    if (this.#openBlobs.size === 0 && this.#sweeper !== undefined) {
      clearInterval(this.#sweeper);
      this.#sweeper = undefined;
    }
  }

  // ---- Manager

  async info(ctx: Ctx, digest: string): Promise<Info> {
    ctx.signal?.throwIfAborted();
    const path = this.#blobPath(digest);
    try {
      return this.#infoOf(digest, await stat(path));
    } catch (err) {
      throw blobError(err, digest);
    }
  }

  async update(ctx: Ctx, info: Pick<Info, "digest" | "labels">, fieldpaths?: readonly string[]): Promise<Info> {
    ctx.signal?.throwIfAborted();
    const path = this.#blobPath(info.digest);
    let st: { size: number; mtime: Date };
    try {
      st = await stat(path);
    } catch (err) {
      throw blobError(err, info.digest);
    }
    const current = this.#labels.get(info.digest)?.labels ?? {};
    const labels = applyLabelUpdate(current, info.labels ?? {}, fieldpaths);
    validateLabels(labels);
    this.#labels.set(info.digest, { labels, updatedAt: new Date() });
    return this.#infoOf(info.digest, st);
  }

  async walk(ctx: Ctx, fn: WalkFn, filters?: readonly string[]): Promise<void> {
    const filter = parseAll(filters ?? []);
    const blobs = join(this.root, "blobs");
    const algorithms = (await readdirOrEmpty(blobs)).filter(isSupportedAlgorithm).sort();
    for (const algorithm of algorithms) {
      const names = (await readdirOrEmpty(join(blobs, algorithm))).sort();
      for (const name of names) {
        ctx.signal?.throwIfAborted();
        const digest = `${algorithm}:${name}`;
        if (!isDigest(digest)) continue;
        let st: { size: number; mtime: Date };
        try {
          st = await stat(join(blobs, algorithm, name));
        } catch {
          continue; // deleted meanwhile
        }
        const info = this.#infoOf(digest, st);
        if (filter.match(adaptContent(info))) await fn(info);
      }
    }
  }

  async delete(ctx: Ctx, digest: string): Promise<void> {
    ctx.signal?.throwIfAborted();
    const path = this.#blobPath(digest);
    try {
      await unlink(path);
    } catch (err) {
      throw blobError(err, digest);
    } finally {
      this.#deletes++;
      this.#evictOpenBlob(digest);
    }
    this.#labels.delete(digest);
  }

  #infoOf(digest: string, st: { size: number; mtime: Date }): Info {
    const entry = this.#labels.get(digest);
    const updatedAt = entry !== undefined && entry.updatedAt > st.mtime ? entry.updatedAt : st.mtime;
    return { digest, size: st.size, createdAt: st.mtime, updatedAt, labels: { ...(entry?.labels ?? {}) } };
  }

  // ---- Ingester

  async writer(ctx: Ctx, options: WriterOptions): Promise<Writer> {
    ctx.signal?.throwIfAborted();
    const { ref } = options;
    if (typeof ref !== "string" || ref === "") throw new InvalidArgumentError("ref must not be empty");
    const expected = options.desc?.digest ?? "";
    const algorithm: DigestAlgorithm = expected === "" ? CanonicalAlgorithm : parseDigest(expected).algorithm;
    const size = options.desc?.size ?? 0;
    const total = Number.isSafeInteger(size) && size > 0 ? size : 0;

    const held = this.#locks.get(ref);
    if (held !== undefined) {
      throw new UnavailableError(
        `ref ${ref} locked for ${Date.now() - held.since.getTime()}ms (since ${held.since.toISOString()})`,
      );
    }
    const lock: Lock = { since: new Date() };
    this.#locks.set(ref, lock);
    try {
      if (expected !== "" && (await exists(this.#blobPath(expected)))) {
        throw new AlreadyExistsError(`content ${expected}: already exists`);
      }
      const writer = await this.#openIngest(ref, algorithm, total, expected, lock.since);
      lock.writer = writer;
      if (expected !== "") this.#expected.set(ref, expected);
      return writer;
    } catch (err) {
      if (this.#locks.get(ref) === lock) this.#locks.delete(ref);
      throw err;
    }
  }

  async #openIngest(
    ref: string,
    algorithm: DigestAlgorithm,
    total: number,
    expected: string,
    lockedAt: Date,
  ): Promise<LocalWriter> {
    const dir = this.#ingestDir(ref);
    const storedRef = await readTextOrUndefined(join(dir, "ref"));
    const hash = createHash(algorithm);
    const flags = constants.O_RDWR | constants.O_CREAT;
    let fh: FileHandle | undefined;
    try {
      if (storedRef !== undefined) {
        // Resume: the offset is the size of `data`; the running digest is computed again from it.
        if (storedRef !== ref) {
          throw new FailedPreconditionError(
            `ingest ref key does not match: ${JSON.stringify(storedRef)} != ${JSON.stringify(ref)}`,
          );
        }
        const status = await this.#readStatus(dir);
        if (total > 0 && status.total > 0 && total !== status.total) {
          throw new FailedPreconditionError(`provided total differs from status: ${total} != ${status.total}`);
        }
        if (total > 0 && status.total === 0) await writeAtomic(join(dir, "total"), String(total));
        fh = await open(join(dir, "data"), flags, 0o666);
        const offset = await hashFile(fh, hash);
        return new LocalWriter(this, {
          ref,
          dir,
          fh,
          hash,
          algorithm,
          offset,
          total: total > 0 ? total : status.total,
          expected: expected || (this.#expected.get(ref) ?? ""),
          startedAt: status.startedAt,
          updatedAt: status.updatedAt,
          lockedAt,
        });
      }
      // A new ingest (or one whose creation never finished: no `ref` file yet). `ref` is written last, so a
      // directory with a `ref` file is complete.
      await mkdir(dir, { recursive: true });
      fh = await open(join(dir, "data"), flags | constants.O_TRUNC, 0o666);
      const now = new Date();
      await writeAtomic(join(dir, "startedat"), formatRFC3339Nano(now));
      await writeAtomic(join(dir, "updatedat"), formatRFC3339Nano(now));
      if (total > 0) await writeAtomic(join(dir, "total"), String(total));
      else await rm(join(dir, "total"), { force: true });
      await writeAtomic(join(dir, "ref"), ref);
      return new LocalWriter(this, {
        ref,
        dir,
        fh,
        hash,
        algorithm,
        offset: 0,
        total,
        expected,
        startedAt: now,
        updatedAt: now,
        lockedAt,
      });
    } catch (err) {
      await fh?.close().catch(() => {});
      throw fromNodeError(err);
    }
  }

  // ---- WriterHost

  async commitIngest(writer: LocalWriter, digest: string, labels: Record<string, string> | undefined): Promise<void> {
    validateLabels(labels);
    const target = this.#blobPath(digest);
    try {
      await mkdir(dirname(target), { recursive: true });
      if (await exists(target)) {
        await writer.closeFile();
        await rm(writer.dir, { recursive: true, force: true });
        this.#expected.delete(writer.ref);
        throw new AlreadyExistsError(`content ${digest}: already exists`);
      }
      const fh = writer.fileHandle;
      const st = await fh.stat();
      // Read-only once committed.
      await fh.chmod(st.mode & 0o7777 & ~0o333);
      await writer.closeFile();
      await rename(join(writer.dir, "data"), target);
      const now = new Date();
      await utimes(target, now, now);
      await rm(writer.dir, { recursive: true, force: true });
    } catch (err) {
      throw fromNodeError(err);
    }
    this.#expected.delete(writer.ref);
    if (labels !== undefined && Object.keys(labels).length > 0) {
      this.#labels.set(digest, { labels: { ...labels }, updatedAt: new Date() });
    }
  }

  async rehash(writer: LocalWriter, algorithm: DigestAlgorithm): Promise<string> {
    const hash = createHash(algorithm);
    await hashFile(writer.fileHandle, hash);
    return `${algorithm}:${hash.digest("hex")}`;
  }

  async persistUpdatedAt(writer: LocalWriter): Promise<void> {
    if (await exists(join(writer.dir, "ref"))) {
      await writeAtomic(join(writer.dir, "updatedat"), formatRFC3339Nano(writer.updatedAt));
    }
  }

  release(writer: LocalWriter): void {
    if (this.#locks.get(writer.ref)?.writer === writer) this.#locks.delete(writer.ref);
  }

  // ---- IngestManager

  async status(ctx: Ctx, ref: string): Promise<Status> {
    ctx.signal?.throwIfAborted();
    const active = this.#locks.get(ref)?.writer;
    if (active !== undefined && !active.ended) return active.currentStatus();
    const dir = this.#ingestDir(ref);
    const stored = await readTextOrUndefined(join(dir, "ref"));
    if (stored !== ref) throw new NotFoundError(`ingest ref ${JSON.stringify(ref)}: not found`);
    return { ...(await this.#readStatus(dir)), ref, expected: this.#expected.get(ref) ?? "" };
  }

  async listStatuses(ctx: Ctx, filters?: readonly string[]): Promise<Status[]> {
    const filter = parseAll(filters ?? []);
    const base = join(this.root, "ingest");
    const out: Status[] = [];
    for (const name of await readdirOrEmpty(base)) {
      ctx.signal?.throwIfAborted();
      const dir = join(base, name);
      const ref = await readTextOrUndefined(join(dir, "ref"));
      if (ref === undefined) continue;
      let status: Status;
      const active = this.#locks.get(ref)?.writer;
      if (active !== undefined && !active.ended) {
        status = active.currentStatus();
      } else {
        try {
          status = { ...(await this.#readStatus(dir)), ref, expected: this.#expected.get(ref) ?? "" };
        } catch {
          continue; // removed meanwhile
        }
      }
      if (filter.match(adaptStatus(status))) out.push(status);
    }
    return out.sort((a, b) => (a.ref < b.ref ? -1 : a.ref > b.ref ? 1 : 0));
  }

  async abort(ctx: Ctx, ref: string): Promise<void> {
    ctx.signal?.throwIfAborted();
    const dir = this.#ingestDir(ref);
    const present = await exists(dir);
    const active = this.#locks.get(ref)?.writer;
    if (active !== undefined) await active.abandon();
    if (!present) throw new NotFoundError(`ingest ref ${JSON.stringify(ref)}: not found`);
    await rm(dir, { recursive: true, force: true });
    this.#expected.delete(ref);
  }

  async expireIngests(olderThan: Date): Promise<string[]> {
    const base = join(this.root, "ingest");
    const removed: string[] = [];
    for (const name of await readdirOrEmpty(base)) {
      const dir = join(base, name);
      const ref = await readTextOrUndefined(join(dir, "ref"));
      if (ref !== undefined && this.#locks.has(ref)) continue;
      let updatedAt: Date;
      try {
        updatedAt = ref === undefined ? (await stat(dir)).mtime : (await this.#readStatus(dir)).updatedAt;
      } catch {
        continue;
      }
      if (updatedAt >= olderThan) continue;
      await rm(dir, { recursive: true, force: true });
      if (ref !== undefined) {
        this.#expected.delete(ref);
        removed.push(ref);
      }
    }
    return removed;
  }

  async close(): Promise<void> {
    const writers = [...this.#locks.values()].flatMap((l) => (l.writer === undefined ? [] : [l.writer]));
    await Promise.all(writers.map((w) => w.close().catch(() => {})));
    for (const digest of [...this.#openBlobs.keys()]) this.#evictOpenBlob(digest);
    if (this.#sweeper !== undefined) clearInterval(this.#sweeper);
    this.#sweeper = undefined;
  }

  /** Status fields from an ingest directory (ref excluded). */
  async #readStatus(dir: string): Promise<Omit<Status, "ref">> {
    const [startedText, updatedText, totalText, dataStat] = await Promise.all([
      readTextOrUndefined(join(dir, "startedat")),
      readTextOrUndefined(join(dir, "updatedat")),
      readTextOrUndefined(join(dir, "total")),
      stat(join(dir, "data")).catch((err: unknown) => {
        if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
        throw fromNodeError(err);
      }),
    ]);
    const dataMtime = dataStat?.mtime;
    const startedAt = (startedText && parseRFC3339Nano(startedText)) || dataMtime || new Date(0);
    let updatedAt = (updatedText && parseRFC3339Nano(updatedText)) || startedAt;
    // `updatedat` is written on close; after a crash the data file knows better.
    if (dataMtime !== undefined && dataMtime > updatedAt) updatedAt = dataMtime;
    const total = totalText === undefined ? 0 : Number.parseInt(totalText.trim(), 10);
    return {
      offset: dataStat?.size ?? 0,
      total: Number.isSafeInteger(total) && total > 0 ? total : 0,
      expected: "",
      startedAt,
      updatedAt,
    };
  }
}

// ---- helpers

function blobError(err: unknown, digest: string): Error {
  if ((err as NodeJS.ErrnoException)?.code === "ENOENT") {
    return new NotFoundError(`content ${digest}: not found`, { cause: err });
  }
  return fromNodeError(err);
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw fromNodeError(err);
  }
}

async function readTextOrUndefined(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") return undefined;
    throw fromNodeError(err);
  }
}

async function readdirOrEmpty(path: string): Promise<string[]> {
  try {
    return await readdir(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw fromNodeError(err);
  }
}

/** Writes a small file atomically: `<path>.tmp`, then rename. */
async function writeAtomic(path: string, text: string): Promise<void> {
  const tmp = `${path}.tmp`;
  await writeFile(tmp, text, { mode: 0o666 });
  await rename(tmp, path);
}

/** Feeds a whole file to a hash with large positional reads; returns its length. */
async function hashFile(fh: FileHandle, hash: { update(data: Uint8Array): unknown }): Promise<number> {
  const buf = Buffer.allocUnsafe(HASH_BUFFER_SIZE);
  let pos = 0;
  for (;;) {
    const { bytesRead } = await fh.read(buf, 0, buf.byteLength, pos);
    if (bytesRead === 0) return pos;
    hash.update(buf.subarray(0, bytesRead));
    pos += bytesRead;
  }
}

/**
 * Copying one blob from a registry into a content store (containerd's remotes.FetchHandler + content.Copy):
 * an ingest ref per blob, so an interrupted download resumes from the ingest's offset with a Range request and
 * a committed blob is skipped; the store verifies size and digest on commit, and a mismatch leaves nothing.
 */
import type { ContentStore, Ctx, Writer } from "@berth/content-store";
import {
  FailedPreconditionError,
  UnavailableError,
  errorKind,
  isAlreadyExists,
  isFailedPrecondition,
  isUnavailable,
} from "@berth/errdefs";
import { type Descriptor, isIndexType, isLayerType, isManifestType } from "@berth/oci-spec";
import type { Repository } from "./registry.js";

/** containerd's remotes.MakeRefKey: the ingest ref for a descriptor (`layer-sha256:…`, `manifest-…`). */
export function refKey(desc: Descriptor): string {
  if (isManifestType(desc.mediaType)) return `manifest-${desc.digest}`;
  if (isIndexType(desc.mediaType)) return `index-${desc.digest}`;
  if (isLayerType(desc.mediaType)) return `layer-${desc.digest}`;
  if (desc.mediaType.includes("config")) return `config-${desc.digest}`;
  return `unknown-${desc.digest}`;
}

/** The label recording where a blob came from (`containerd.io/distribution.source.<host>=<repo>`). */
export function distributionSourceLabel(repo: Repository): [string, string] {
  return [`containerd.io/distribution.source.${repo.domain}`, repo.path];
}

/** Called as bytes arrive: the ingest's offset (including resumed bytes) and the total. */
export type FetchProgress = (offset: number, total: number) => void;

export interface FetchBlobOptions {
  readonly labels?: Record<string, string>;
  readonly onProgress?: FetchProgress;
  /** Resumes after a connection drop mid-body (default 2). */
  readonly resumeAttempts?: number;
}

/** Writes are lock-step round trips: send MiB-sized chunks, not the socket's 64 KiB reads. */
const WRITE_CHUNK = 1 << 20;
/** How much of a body may be read ahead of the store's writes before the socket is paused. */
const READ_AHEAD = 8 << 20;

async function openWriter(ctx: Ctx, store: ContentStore, ref: string, desc: Descriptor): Promise<Writer | undefined> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await store.writer(ctx, { ref, desc });
    } catch (err) {
      if (isAlreadyExists(err)) return undefined;
      // another pull holds the ref: wait for it to finish (containerd waits the same way)
      if (isUnavailable(err) && attempt < 100) {
        await new Promise((r) => setTimeout(r, 100));
        continue;
      }
      throw err;
    }
  }
}

/**
 * Fetches `desc` into `store` unless it is there already. Returns "exists" when skipped, else "fetched".
 * A digest mismatch throws FailedPrecondition and discards the ingest; a lost connection throws Unavailable
 * and keeps the ingest, so the next attempt resumes.
 */
export async function fetchBlob(
  ctx: Ctx,
  store: ContentStore,
  repo: Repository,
  desc: Descriptor,
  options: FetchBlobOptions = {},
): Promise<"exists" | "fetched"> {
  const ref = refKey(desc);
  const writer = await openWriter(ctx, store, ref, desc);
  if (writer === undefined) return "exists";
  const [labelKey, labelValue] = distributionSourceLabel(repo);
  const labels = { ...options.labels, [labelKey]: labelValue };
  let closed = false;
  try {
    let offset = (await writer.status()).offset;
    if (offset > desc.size) {
      await writer.truncate(0);
      offset = 0;
    }
    let attemptsLeft = options.resumeAttempts ?? 2;
    while (offset < desc.size) {
      try {
        // a complete body ends the loop even when short: commit then reports the size mismatch
        offset = await copyBody(ctx, writer, repo, desc, offset, options.onProgress);
        break;
      } catch (err) {
        if (ctx.signal?.aborted || errorKind(err) !== "Unavailable" || attemptsLeft-- <= 0) throw err;
        offset = (await writer.status()).offset;
      }
    }
    try {
      await writer.commit(desc.size, desc.digest, { labels });
      closed = true;
    } catch (err) {
      if (isAlreadyExists(err)) {
        closed = true;
        return "exists";
      }
      throw err;
    }
    return "fetched";
  } catch (err) {
    if (isFailedPrecondition(err)) {
      // wrong bytes: drop the ingest so that nothing of it is kept or resumed
      await writer.close().catch(() => {});
      closed = true;
      await store.abort(ctx, ref).catch(() => {});
      throw new FailedPreconditionError(
        `blob ${desc.digest} from ${repo.domain}/${repo.path}: content does not match its descriptor`,
        { cause: err },
      );
    }
    throw err;
  } finally {
    if (!closed) await writer.close().catch(() => {});
  }
}

/** Streams the body from `offset` into the writer; returns the new offset. */
async function copyBody(
  ctx: Ctx,
  writer: Writer,
  repo: Repository,
  desc: Descriptor,
  offset: number,
  onProgress: FetchProgress | undefined,
): Promise<number> {
  const res = await repo.fetch(desc, offset, ctx.signal ? { signal: ctx.signal } : {});
  let at = offset;
  if (offset > 0 && res.status === 200) {
    // the registry ignored the Range header: start over
    await writer.truncate(0);
    at = 0;
  }
  onProgress?.(at, desc.size);
  // Network reads and store writes overlap: the body is queued (up to READ_AHEAD bytes, then the socket is
  // paused) while the previous chunk's write is in flight.
  const body = res.body;
  const queue: Buffer[] = [];
  let queued = 0;
  let received = at;
  let ended = false;
  let failure: unknown;
  let wake: (() => void) | undefined;
  const notify = () => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  body.on("data", (b: Buffer) => {
    if (received + b.length > desc.size) {
      failure ??= new FailedPreconditionError(`blob ${desc.digest}: registry sent more than ${desc.size} bytes`);
      body.destroy();
    } else {
      received += b.length;
      queue.push(b);
      queued += b.length;
      if (queued >= READ_AHEAD) body.pause();
    }
    notify();
  });
  body.once("end", () => {
    ended = true;
    notify();
  });
  body.once("error", (err) => {
    failure ??= err;
    notify();
  });
  body.once("close", () => {
    if (!ended && !body.complete) failure ??= new Error("connection closed");
    notify();
  });
  // One reused buffer for the chunks sent to the store: a fresh 1 MiB buffer per write made most of the CPU
  // time (page faults, GC). Safe because only one write is in flight and a resolved write() is done with its
  // bytes; a lone oversized network chunk is passed through as is.
  const slab = Buffer.allocUnsafeSlow(WRITE_CHUNK);
  const take = (): Buffer => {
    const first = queue[0] as Buffer;
    if (first.length >= WRITE_CHUNK) {
      queue.shift();
      queued -= first.length;
      return first;
    }
    let n = 0;
    while (queue.length > 0) {
      const b = queue[0] as Buffer;
      const room = WRITE_CHUNK - n;
      if (room === 0) break;
      if (b.length <= room) {
        b.copy(slab, n);
        n += b.length;
        queue.shift();
      } else {
        b.copy(slab, n, 0, room);
        n += room;
        queue[0] = b.subarray(room);
      }
    }
    queued -= n;
    return slab.subarray(0, n);
  };
  try {
    for (;;) {
      if (queued >= WRITE_CHUNK || (queued > 0 && (ended || failure !== undefined))) {
        const chunk = take();
        if (body.isPaused() && queued < READ_AHEAD) body.resume();
        at = await writer.write(chunk);
        onProgress?.(at, desc.size);
        continue;
      }
      if (failure !== undefined) throw failure;
      if (ended) break;
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
    }
  } catch (err) {
    body.destroy();
    // what arrived was written: it is part of the blob and the ingest resumes from there
    if (errorKind(err) === "Unknown" && !ctx.signal?.aborted) {
      throw new UnavailableError(
        `fetching ${desc.digest} from ${repo.domain}/${repo.path}: connection lost at ${at} of ${desc.size} bytes`,
        { cause: err },
      );
    }
    throw err;
  }
  return at;
}

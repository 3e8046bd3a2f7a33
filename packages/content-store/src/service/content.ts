import { timestampFromDate } from "@berth/api";
import {
  type Content,
  type InfoSchema,
  type Info as InfoPb,
  type StatusSchema,
  WriteAction,
  type WriteContentRequest,
  type WriteContentResponseSchema,
} from "@berth/api/services/content/v1";
import { AlreadyExistsError, DataLossError, InvalidArgumentError, OutOfRangeError, isNotFound } from "@berth/errdefs";
import { leaseFromHeaders, requireNamespace } from "@berth/identifiers";
import { parseDigest } from "@berth/oci-spec";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import type { ContentStore, Ctx, Info, Status, Writer } from "../content.js";

export interface ContentServiceOptions {
  /** Infos per List message (containerd: 100). */
  readonly listBatchSize?: number;
  /** Largest data chunk of a Read message (containerd's copy buffer: 1 MiB). */
  readonly readChunkSize?: number;
  /** Called after a blob is deleted (the daemon publishes `/content/delete` here, as containerd does). */
  readonly onDelete?: (ctx: Ctx, digest: string) => void;
}

type InfoInit = MessageInitShape<typeof InfoSchema>;
type StatusInit = MessageInitShape<typeof StatusSchema>;
type WriteResponseInit = MessageInitShape<typeof WriteContentResponseSchema>;

/** The Ctx of a call: namespace (required: FailedPrecondition when missing), lease, and the call's signal. */
export function ctxFromHandler(hc: HandlerContext): Ctx {
  const namespace = requireNamespace(hc.requestHeader);
  const lease = leaseFromHeaders(hc.requestHeader);
  return lease === undefined ? { namespace, signal: hc.signal } : { namespace, lease, signal: hc.signal };
}

export function infoToProto(info: Info): InfoInit {
  return {
    digest: info.digest,
    size: BigInt(info.size),
    createdAt: timestampFromDate(info.createdAt),
    updatedAt: timestampFromDate(info.updatedAt),
    labels: { ...info.labels },
  };
}

export function statusToProto(status: Status): StatusInit {
  return {
    ref: status.ref,
    offset: BigInt(status.offset),
    total: BigInt(status.total),
    expected: status.expected,
    startedAt: timestampFromDate(status.startedAt),
    updatedAt: timestampFromDate(status.updatedAt),
  };
}

function checkDigest(digest: string): string {
  parseDigest(digest);
  return digest;
}

function toSafeNumber(value: bigint, what: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n)) throw new InvalidArgumentError(`${what} ${value} out of range`);
  return n;
}

/**
 * containerd.services.content.v1.Content over a ContentStore. Every call needs a namespace; errors are thrown
 * as typed errdefs errors (the server's interceptor maps them to gRPC codes).
 */
export function contentService(store: ContentStore, options: ContentServiceOptions = {}): ServiceImpl<typeof Content> {
  const batchSize = Math.max(1, options.listBatchSize ?? 100);
  const chunkSize = Math.max(1, options.readChunkSize ?? 1 << 20);

  return {
    async info(req, hc) {
      const ctx = ctxFromHandler(hc);
      const info = await store.info(ctx, checkDigest(req.digest));
      return { info: infoToProto(info) };
    },

    async update(req, hc) {
      const ctx = ctxFromHandler(hc);
      const pb: InfoPb | undefined = req.info;
      if (pb === undefined) throw new InvalidArgumentError("info is required");
      checkDigest(pb.digest);
      const paths = req.updateMask?.paths ?? [];
      for (const path of paths) {
        if (path !== "labels" && !path.startsWith("labels.")) {
          throw new InvalidArgumentError(`cannot update ${JSON.stringify(path)} field on content info`);
        }
      }
      const info = await store.update(ctx, { digest: pb.digest, labels: pb.labels }, paths);
      return { info: infoToProto(info) };
    },

    async *list(req, hc) {
      const ctx = ctxFromHandler(hc);
      const infos: InfoInit[] = [];
      await store.walk(ctx, (info) => void infos.push(infoToProto(info)), req.filters);
      for (let i = 0; i < infos.length; i += batchSize) {
        yield { info: infos.slice(i, i + batchSize) };
      }
    },

    async delete(req, hc) {
      const ctx = ctxFromHandler(hc);
      const digest = checkDigest(req.digest);
      await store.delete(ctx, digest);
      options.onDelete?.(ctx, digest);
      return {};
    },

    async *read(req, hc) {
      const ctx = ctxFromHandler(hc);
      const digest = checkDigest(req.digest);
      // containerd's Read treats a negative offset as 0 (contentserver.go), it is not an error.
      const offset = req.offset < 0n ? 0 : toSafeNumber(req.offset, "read offset");
      const reader = await store.readerAt(ctx, { digest });
      try {
        if (offset > reader.size) {
          throw new OutOfRangeError(`read past object length ${reader.size} bytes`);
        }
        let size = toSafeNumber(req.size, "read size");
        if (size <= 0 || offset + size > reader.size) size = reader.size - offset;
        let pos = offset;
        for await (const chunk of chunked(reader.stream(offset, size), chunkSize)) {
          hc.signal.throwIfAborted();
          yield { offset: BigInt(pos), data: chunk };
          pos += chunk.byteLength;
        }
      } finally {
        await reader.close();
      }
    },

    async status(req, hc) {
      const ctx = ctxFromHandler(hc);
      return { status: statusToProto(await store.status(ctx, req.ref)) };
    },

    async listStatuses(req, hc) {
      const ctx = ctxFromHandler(hc);
      const statuses = await store.listStatuses(ctx, req.filters);
      return { statuses: statuses.map(statusToProto) };
    },

    async abort(req, hc) {
      const ctx = ctxFromHandler(hc);
      await store.abort(ctx, req.ref);
      return {};
    },

    write(requests, hc) {
      return writeSession(store, requests, hc);
    },
  };
}

/** Splits chunks larger than `max` (a store may stream bigger ones). */
async function* chunked(source: AsyncIterable<Uint8Array>, max: number): AsyncIterable<Uint8Array> {
  for await (const chunk of source) {
    if (chunk.byteLength <= max) {
      yield chunk;
      continue;
    }
    for (let i = 0; i < chunk.byteLength; i += max) yield chunk.subarray(i, i + max);
  }
}

/**
 * The Write protocol: exactly one response per request, in order. The first message names the ref and locks
 * its writer for the session; WRITE appends at the current offset (offset 0 restarts the ingest); COMMIT
 * verifies and commits, then ends the stream. A half-close without COMMIT leaves the ingest resumable.
 */
async function* writeSession(
  store: ContentStore,
  requests: AsyncIterable<WriteContentRequest>,
  hc: HandlerContext,
): AsyncGenerator<WriteResponseInit, void, undefined> {
  const ctx = ctxFromHandler(hc);
  const it = requests[Symbol.asyncIterator]();
  let next = await it.next();
  if (next.done) return;
  let req: WriteContentRequest = next.value;
  const ref = req.ref;
  if (ref === "") throw new InvalidArgumentError("first message must have a reference");
  let total = req.total > 0n ? toSafeNumber(req.total, "total") : 0;
  let expected = req.expected === "" ? "" : checkDigest(req.expected);

  const writer: Writer = await store.writer(ctx, {
    ref,
    desc: expected === "" ? { size: total } : { size: total, digest: expected },
  });
  try {
    for (;;) {
      const ws = await writer.status();
      const res: WriteResponseInit & { offset: bigint } = {
        action: req.action,
        offset: BigInt(ws.offset),
        startedAt: timestampFromDate(ws.startedAt),
        updatedAt: timestampFromDate(ws.updatedAt),
      };

      if (req.expected !== "") {
        expected = checkDigest(req.expected);
        if (await exists(store, ctx, expected)) {
          await writer.close();
          await store.abort(ctx, ref).catch((err: unknown) => {
            if (!isNotFound(err)) throw err;
          });
          throw new AlreadyExistsError(`blob with expected digest ${expected} exists`);
        }
      }
      if (req.total > 0n) total = toSafeNumber(req.total, "total");

      let committed = false;
      switch (req.action) {
        case WriteAction.STAT:
          break;
        case WriteAction.WRITE:
        case WriteAction.COMMIT: {
          const offset = toSafeNumber(req.offset, "write offset");
          if (offset > 0 && offset !== ws.offset) {
            throw new OutOfRangeError(`write @${offset} must occur at current offset ${ws.offset}`);
          }
          if (offset === 0 && ws.offset > 0) {
            await writer.truncate(0);
            res.offset = 0n;
          }
          if (req.data.byteLength > 0) {
            const before = Number(res.offset);
            const after = await writer.write(req.data);
            if (after - before !== req.data.byteLength) {
              throw new DataLossError(`wrote ${after - before} of ${req.data.byteLength} bytes`);
            }
            res.offset = BigInt(after);
          }
          if (req.action === WriteAction.COMMIT) {
            const digest = writer.digest();
            await writer.commit(total, expected === "" ? undefined : expected, { labels: { ...req.labels } });
            res.digest = expected === "" ? digest : expected;
            committed = true;
          }
          break;
        }
        default:
          throw new InvalidArgumentError(`unknown write action ${req.action}`);
      }
      res.total = BigInt(total);
      if (res.digest === undefined) res.digest = writer.digest();
      yield res;
      if (committed) return;

      next = await it.next();
      if (next.done) return;
      req = next.value;
    }
  } finally {
    await writer.close();
  }
}

async function exists(store: ContentStore, ctx: Ctx, digest: string): Promise<boolean> {
  try {
    await store.info(ctx, digest);
    return true;
  } catch (err) {
    if (isNotFound(err)) return false;
    throw err;
  }
}

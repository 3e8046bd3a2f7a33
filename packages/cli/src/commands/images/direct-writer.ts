/**
 * Content writers for `berth images import` on the direct Content.Write path (`fast-write.ts`: gRPC frames
 * written straight onto the CLI's HTTP/2 session, the 1 MiB payloads sent without a copy), as `berth content
 * ingest` does. Through connect every WRITE's payload is copied twice (protobuf encoding, then the envelope),
 * which was most of the CLI's CPU time on a large import. Everything else still goes through the proxy store.
 */
import type { Content, WriteContentResponse } from "@berth/api/services/content/v1";
import type { CommitOptions, ContentStore, Ctx, Status, Writer, WriterOptions } from "@berth/content-store";
import { FailedPreconditionError } from "@berth/errdefs";
import { fromConnectError } from "@berth/errdefs/connect";
import type { CallOptions, Client } from "@connectrpc/connect";
import { directStreamsOf } from "../../connection.js";
import { openDirectWrite, type WriteChannel, type WriteInit } from "../../fast-write.js";

const LEASE_HEADER = "containerd-lease";
/** Go's zero time, what an unset timestamp reads as. */
const GO_ZERO_DATE = new Date(-62135596800000);

type ContentApi = typeof import("@berth/api/services/content/v1");

class DirectWriter implements Writer {
  #offset = 0;
  #total = 0;
  #expected = "";
  #digest = "";
  #startedAt = GO_ZERO_DATE;
  #updatedAt = GO_ZERO_DATE;
  #ended = false;

  constructor(
    readonly ref: string,
    private readonly channel: WriteChannel,
    private readonly actions: ContentApi["WriteAction"],
  ) {}

  async call(req: WriteInit): Promise<WriteContentResponse> {
    if (this.#ended) throw new FailedPreconditionError(`writer for ref ${this.ref} is closed`);
    try {
      await this.channel.send(req);
      const res = await this.channel.recv();
      this.#offset = Number(res.offset);
      if (res.total > 0n) this.#total = Number(res.total);
      this.#digest = res.digest;
      if (res.startedAt) this.#startedAt = new Date(Number(res.startedAt.seconds) * 1000 + res.startedAt.nanos / 1e6);
      if (res.updatedAt) this.#updatedAt = new Date(Number(res.updatedAt.seconds) * 1000 + res.updatedAt.nanos / 1e6);
      return res;
    } catch (err) {
      // A failed call ends the stream on the server: the writer cannot be used again.
      this.#ended = true;
      this.channel.abort();
      throw fromConnectError(err);
    }
  }

  async open(total: number, expected: string): Promise<void> {
    this.#total = total;
    this.#expected = expected;
    await this.call({ action: this.actions.STAT, ref: this.ref, total: BigInt(total), expected });
  }

  async status(): Promise<Status> {
    await this.call({ action: this.actions.STAT, ref: this.ref });
    return {
      ref: this.ref,
      offset: this.#offset,
      total: this.#total,
      expected: this.#expected,
      startedAt: this.#startedAt,
      updatedAt: this.#updatedAt,
    };
  }

  digest(): string {
    return this.#digest;
  }

  async write(data: Uint8Array): Promise<number> {
    if (data.byteLength === 0) return this.#offset;
    await this.call({ action: this.actions.WRITE, ref: this.ref, offset: BigInt(this.#offset), data });
    return this.#offset;
  }

  async truncate(size: 0): Promise<void> {
    if (size !== 0) throw new FailedPreconditionError(`cannot truncate ingest ${this.ref} to ${size}`);
    await this.call({ action: this.actions.WRITE, ref: this.ref, offset: 0n });
  }

  async commit(size: number, expected: string | undefined, options?: CommitOptions): Promise<void> {
    try {
      await this.call({
        action: this.actions.COMMIT,
        ref: this.ref,
        total: BigInt(size > 0 ? size : 0),
        expected: expected ?? "",
        offset: BigInt(this.#offset),
        labels: { ...(options?.labels ?? {}) },
      });
    } finally {
      // The server ends the stream after COMMIT, whatever the outcome.
      await this.close();
    }
  }

  async close(): Promise<void> {
    if (this.#ended) return;
    this.#ended = true;
    await this.channel.close().catch(() => {});
  }
}

/**
 * `store` with its writers on direct Content.Write streams when `client` was made over a connection that has
 * them; `store` itself otherwise (in-memory transports, `--debug`).
 */
export async function withDirectWriters(
  store: ContentStore,
  client: Client<typeof Content>,
  callOptions: () => CallOptions,
): Promise<ContentStore> {
  const direct = directStreamsOf(client);
  if (direct === undefined) return store;
  const { WriteAction } = await import("@berth/api/services/content/v1");
  const writer = async (ctx: Ctx, options: WriterOptions): Promise<Writer> => {
    const base = callOptions();
    const headers = new Headers(base.headers);
    if (ctx.lease) headers.set(LEASE_HEADER, ctx.lease);
    let channel: WriteChannel;
    try {
      channel = await openDirectWrite(direct, {
        ...base,
        headers,
        ...(ctx.signal === undefined ? {} : { signal: ctx.signal }),
      });
    } catch (err) {
      throw fromConnectError(err);
    }
    const w = new DirectWriter(options.ref, channel, WriteAction);
    const total = options.desc?.size !== undefined && options.desc.size > 0 ? options.desc.size : 0;
    await w.open(total, options.desc?.digest ?? "");
    return w;
  };
  return Object.assign(Object.create(store) as ContentStore, { writer });
}

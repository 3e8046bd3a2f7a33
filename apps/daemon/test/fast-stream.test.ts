import { createHash } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  Content,
  ReadContentResponseSchema,
  WriteAction,
  type WriteContentRequestSchema,
} from "@berth/api/services/content/v1";
import { createLocalStore } from "@berth/content-store/local";
import { contentService } from "@berth/content-store/service";
import { isResourceExhausted } from "@berth/errdefs";
import { type MessageInitShape, create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import * as net from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BufferPool, EnvelopeReader, encodeReadContentResponse, framedParts } from "../src/server/fast-stream.js";
import { type GrpcServer, startGrpcServer } from "../src/server/grpc-server.js";

const frame = (body: Uint8Array) => Buffer.concat(framedParts(body));
const silent = { debug() {}, info() {}, warn() {}, error() {} };

describe("EnvelopeReader", () => {
  for (const pooled of [false, true]) {
    it(`splits messages across and within chunks${pooled ? " (pooled)" : ""}`, () => {
      const big = Buffer.alloc(200_000, 7);
      const small = Buffer.from("hello");
      const bytes = Buffer.concat([frame(small), frame(big), frame(new Uint8Array(0)), frame(small)]);
      const reader = new EnvelopeReader(1 << 20, pooled ? new BufferPool() : undefined);
      const out: Buffer[] = [];
      for (let i = 0; i < bytes.length; i += 3000) {
        reader.push(bytes.subarray(i, i + 3000));
        for (let m = reader.next(); m !== undefined; m = reader.next()) out.push(Buffer.from(m));
      }
      expect(out.map((b) => b.length)).toEqual([5, 200_000, 0, 5]);
      expect(out[1]?.equals(big)).toBe(true);
      expect(out[3]?.toString()).toBe("hello");
      expect(reader.pendingBytes).toBe(0);
      reader.releaseLent();
    });
  }

  it("reassembles the same messages for any chunking, reading as they come or all at the end", () => {
    const messages = [
      Buffer.from("a"),
      Buffer.alloc(70_000, 1),
      Buffer.alloc(0),
      Buffer.alloc(1 << 20, 2),
      Buffer.from("tail"),
      Buffer.alloc(65_536, 3),
    ];
    const small = messages.filter((m) => m.length < 10);
    const cases = [1, 4, 5, 6, 7].map((size) => ({ size, set: small }));
    cases.push(...[3000, 16_384, 70_005, 2 << 20].map((size) => ({ size, set: messages })));
    for (const { size, set } of cases) {
      const bytes = Buffer.concat(set.map(frame));
      for (const eager of [true, false]) {
        const reader = new EnvelopeReader(2 << 20, new BufferPool());
        const out: Buffer[] = [];
        const drain = () => {
          for (let m = reader.next(); m !== undefined; m = reader.next()) out.push(Buffer.from(m));
        };
        for (let i = 0; i < bytes.length; i += size) {
          reader.push(bytes.subarray(i, i + size));
          if (eager) drain();
        }
        drain();
        expect(out.length, `chunks of ${size}`).toBe(set.length);
        for (const [i, m] of out.entries()) {
          expect(m.equals(set[i] as Buffer), `message ${i}, chunks of ${size}`).toBe(true);
        }
        expect(reader.pendingBytes).toBe(0);
      }
    }
  });

  it("counts a partly received message as pending and reuses pooled buffers once released", () => {
    const pool = new BufferPool();
    const reader = new EnvelopeReader(1 << 20, pool);
    const one = frame(Buffer.alloc(100_000, 9));
    reader.push(one.subarray(0, 3));
    expect(reader.pendingBytes).toBe(3);
    reader.push(one.subarray(3, 50_000));
    expect(reader.next()).toBeUndefined();
    expect(reader.pendingBytes).toBe(50_000);
    reader.push(one.subarray(50_000));
    const first = reader.next() as Buffer;
    expect(first.length).toBe(100_000);
    expect(reader.pendingBytes).toBe(0);
    reader.releaseLent();
    const two = frame(Buffer.alloc(100_000, 8));
    reader.push(two.subarray(0, 16_384));
    reader.push(two.subarray(16_384));
    const second = reader.next() as Buffer;
    // the same pooled memory, now holding the second message
    expect(second.buffer).toBe(first.buffer);
    expect(second.every((b) => b === 8)).toBe(true);
  });

  it("returns the messages before a bad header, then its error", () => {
    const reader = new EnvelopeReader(10);
    reader.push(Buffer.concat([frame(Buffer.from("ok")), frame(Buffer.alloc(11)), frame(Buffer.from("never"))]));
    expect(reader.next()?.toString()).toBe("ok");
    expect(() => reader.next()).toThrowError(/larger than max \(11 vs\. 10\)/);
    expect(() => reader.next()).toThrowError(/larger than max/);
  });

  it("refuses messages over the limit and compressed ones", () => {
    const reader = new EnvelopeReader(10);
    reader.push(frame(Buffer.alloc(11)));
    expect(() => reader.next()).toThrowError(/larger than max \(11 vs\. 10\)/);
    try {
      reader.next();
    } catch (err) {
      expect(isResourceExhausted(err)).toBe(true);
    }
    const compressed = new EnvelopeReader(10);
    compressed.push(Buffer.from([1, 0, 0, 0, 1, 0]));
    expect(() => compressed.next()).toThrowError(/compressed/);
  });
});

describe("encodeReadContentResponse", () => {
  it("frames the same bytes as toBinary", () => {
    const cases = [
      { offset: 0n, data: new Uint8Array(0) },
      { offset: 5n, data: Buffer.from("abc") },
      { offset: 300n, data: Buffer.alloc(100_000, 1) },
      { offset: BigInt(2 ** 40 + 3), data: Buffer.alloc(32 << 10, 2) },
      { data: Buffer.alloc(1 << 20, 3) },
    ];
    for (const c of cases) {
      const parts = encodeReadContentResponse(c);
      expect(parts).toBeDefined();
      const want = frame(toBinary(ReadContentResponseSchema, create(ReadContentResponseSchema, c)));
      expect(Buffer.concat(parts ?? []).equals(want)).toBe(true);
    }
    expect(encodeReadContentResponse({ offset: -1n, data: new Uint8Array(1) })).toBeUndefined();
    expect(encodeReadContentResponse({ offset: 1n, extra: 1 })).toBeUndefined();
  });
});

type WriteInit = MessageInitShape<typeof WriteContentRequestSchema>;

async function* requests(items: WriteInit[]): AsyncIterable<WriteInit> {
  for (const item of items) yield item;
}

describe("content streams on the fast path", () => {
  let dir: string;
  let server: GrpcServer;
  let client: ReturnType<typeof createClient<typeof Content>>;
  const headers = { "containerd-namespace": "test" };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "berth-fast-stream-"));
    const store = createLocalStore({ root: join(dir, "content") });
    const address = join(dir, "s.sock");
    server = await startGrpcServer({
      address,
      uid: 0,
      gid: 0,
      routes: (router) => router.service(Content, contentService(store)),
      maxRecvMessageSize: 16 << 20,
      maxSendMessageSize: 16 << 20,
      log: silent,
    });
    const transport = createGrpcTransport({
      baseUrl: "http://localhost",
      nodeOptions: { createConnection: () => net.connect(address) },
    });
    client = createClient(Content, transport);
  });

  afterAll(async () => {
    await server?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("writes a blob in chunks, reads it back whole and in ranges, and keeps error codes", async () => {
    const data = Buffer.alloc(3 * (1 << 20) + 12345);
    for (let i = 0; i < data.length; i++) data[i] = (i * 31) & 0xff;
    const digest = `sha256:${createHash("sha256").update(data).digest("hex")}`;
    const chunks: WriteInit[] = [];
    for (let off = 0; off < data.length; off += 1 << 20) {
      chunks.push({ action: WriteAction.WRITE, offset: BigInt(off), data: data.subarray(off, off + (1 << 20)) });
    }
    const responses = [];
    for await (const res of client.write(
      requests([
        { action: WriteAction.STAT, ref: "r1", total: BigInt(data.length), expected: digest },
        ...chunks,
        { action: WriteAction.COMMIT, total: BigInt(data.length), offset: BigInt(data.length), expected: digest },
      ]),
      { headers },
    )) {
      responses.push(res);
    }
    expect(responses).toHaveLength(chunks.length + 2);
    expect(responses.at(-1)?.digest).toBe(digest);
    expect(Number(responses.at(-2)?.offset)).toBe(data.length);

    const parts: Uint8Array[] = [];
    for await (const res of client.read({ digest }, { headers })) parts.push(res.data);
    expect(Buffer.concat(parts).equals(data)).toBe(true);

    const range: Uint8Array[] = [];
    for await (const res of client.read({ digest, offset: 1000n, size: 32768n }, { headers })) range.push(res.data);
    expect(Buffer.concat(range).equals(data.subarray(1000, 1000 + 32768))).toBe(true);

    // the same blob again: AlreadyExists at the first message
    const again = async () => {
      for await (const _ of client.write(requests([{ action: WriteAction.STAT, ref: "r2", expected: digest }]), {
        headers,
      })) {
        // drain
      }
    };
    await expect(again()).rejects.toSatisfy((err) => ConnectError.from(err).code === Code.AlreadyExists);

    // a write at the wrong offset: OutOfRange after the STAT answer
    const wrongOffset = async () => {
      for await (const _ of client.write(
        requests([
          { action: WriteAction.STAT, ref: "r3" },
          { action: WriteAction.WRITE, offset: 10n, data: Buffer.from("x") },
        ]),
        { headers },
      )) {
        // drain
      }
    };
    await expect(wrongOffset()).rejects.toSatisfy((err) => ConnectError.from(err).code === Code.OutOfRange);

    const missing = async () => {
      for await (const _ of client.read({ digest: `sha256:${"0".repeat(64)}` }, { headers })) {
        // drain
      }
    };
    await expect(missing()).rejects.toSatisfy((err) => ConnectError.from(err).code === Code.NotFound);

    const noNamespace = async () => {
      for await (const _ of client.read({ digest })) {
        // drain
      }
    };
    await expect(noNamespace()).rejects.toSatisfy((err) => ConnectError.from(err).code === Code.FailedPrecondition);
  });
});

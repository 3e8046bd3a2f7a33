import { spawn } from "node:child_process";
import { mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { createConnection, createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  errorKind,
  isCanceled,
  isDeadlineExceeded,
  isInvalidArgument,
  isNotFound,
  isNotImplemented,
  isResourceExhausted,
  isUnavailable,
  NotFoundError,
} from "@berth/errdefs";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  connectTtrpcClient,
  createTtrpcClient,
  createTtrpcServer,
  createTtrpcServiceClient,
  NAMESPACE_METADATA_KEY,
  type TtrpcCallContext,
  type TtrpcClient,
  type TtrpcServer,
} from "../src/index.js";
import { FrameReader } from "../src/internal/frame-reader.js";
import {
  decodeRequest,
  decodeResponse,
  decodeStatus,
  encodeMetadata,
  encodeRequestFrame,
  encodeRequestPrefix,
  encodeResponseFrame,
  encodeStatus,
  HEADER_LENGTH,
  MAX_MESSAGE_LENGTH,
  MessageType,
  writeHeader,
} from "../src/internal/wire.js";
import { StatusSchema } from "@berth/api/google/rpc";
import { StateRequestSchema, Task } from "@berth/api/task/v2";

const SERVICE = "test.v1.Echo";
const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

let dir: string;
let sock: string;
const cleanups: Array<() => unknown> = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "berth-ttrpc-"));
  sock = join(dir, "t.sock");
});

afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
  await rm(dir, { recursive: true, force: true });
});

async function startServer(setup: (s: TtrpcServer) => void): Promise<TtrpcServer> {
  const server = createTtrpcServer();
  setup(server);
  await server.listen(sock, { mode: 0o600 });
  cleanups.push(() => server.close());
  return server;
}

async function connect(options?: Parameters<typeof connectTtrpcClient>[1]): Promise<TtrpcClient> {
  const client = await connectTtrpcClient(sock, options);
  cleanups.push(() => client.close());
  return client;
}

/** A raw peer: sends bytes, collects complete frames. */
async function rawPeer(path: string) {
  const socket = createConnection({ path });
  await new Promise<void>((resolve, reject) => socket.once("connect", resolve).once("error", reject));
  cleanups.push(() => socket.destroy());
  const frames: Array<{ streamId: number; type: number; payload: Buffer }> = [];
  const waiters: Array<() => void> = [];
  const reader = new FrameReader({
    frame: (streamId, type, _flags, payload) => {
      frames.push({ streamId, type, payload: Buffer.from(payload) });
      for (const w of waiters.splice(0)) w();
    },
    oversized: () => {},
  });
  socket.on("data", (c: Buffer) => reader.push(c));
  socket.on("error", () => {});
  const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
  return {
    socket,
    closed,
    async frame(i: number) {
      while (frames.length <= i) await new Promise<void>((r) => waiters.push(r));
      return frames[i] as { streamId: number; type: number; payload: Buffer };
    },
  };
}

function echoServer() {
  return startServer((s) =>
    s.register(SERVICE, {
      Echo: async (payload) => payload,
      Sync: (payload) => payload,
      Meta: async (_p, ctx) => enc(JSON.stringify([...ctx.metadata])),
      Fail: async () => {
        throw new NotFoundError("thing x");
      },
      Crash: async () => {
        throw new Error("boom");
      },
    }),
  );
}

describe("wire", () => {
  it("encodes and decodes a request", () => {
    const md = encodeMetadata([
      [NAMESPACE_METADATA_KEY, "default"],
      ["k", "v"],
    ]);
    const frame = encodeRequestFrame(7, encodeRequestPrefix("a.B", "C"), enc("xyz"), 1_500_000_000, md, undefined);
    expect(frame).toBeDefined();
    const f = frame as Buffer;
    expect(f.readUInt32BE(0)).toBe(f.length - HEADER_LENGTH);
    expect(f.readUInt32BE(4)).toBe(7);
    expect(f[8]).toBe(MessageType.Request);
    expect(f[9]).toBe(0);
    const req = decodeRequest(f.subarray(HEADER_LENGTH));
    expect(req.service).toBe("a.B");
    expect(req.method).toBe("C");
    expect(dec(req.payload)).toBe("xyz");
    expect(req.timeoutNano).toBe(1_500_000_000);
    expect(req.metadata).toEqual([
      [NAMESPACE_METADATA_KEY, "default"],
      ["k", "v"],
    ]);
  });

  it("always emits a status on responses (like containerd/ttrpc)", () => {
    const ok = encodeResponseFrame(1, undefined, new Uint8Array([8, 1]));
    expect([...ok]).toEqual([0, 0, 0, 6, 0, 0, 0, 1, 2, 0, 0x0a, 0, 0x12, 2, 8, 1]);
    const bad = encodeResponseFrame(
      3,
      encodeStatus({ code: 12, message: "method Bogus", details: [] }),
      new Uint8Array(),
    );
    const res = decodeResponse(bad.subarray(HEADER_LENGTH));
    expect(res.status).toEqual({ code: 12, message: "method Bogus", details: [] });
    expect(res.payload.length).toBe(0);
  });

  it("round-trips status details", () => {
    const status = { code: 5, message: "m", details: [{ typeUrl: "x.Y", value: new Uint8Array([1, 2]) }] };
    const res = decodeResponse(encodeResponseFrame(1, encodeStatus(status), new Uint8Array()).subarray(10));
    expect(res.status?.details[0]?.typeUrl).toBe("x.Y");
    expect([...(res.status?.details[0]?.value ?? [])]).toEqual([1, 2]);
  });

  it("encodes google.rpc.Status compatibly with @berth/api's StatusSchema", () => {
    const status = { code: 5, message: "container x: not found", details: [{ typeUrl: "a.B", value: enc("v") }] };
    const viaApi = fromBinary(StatusSchema, encodeStatus(status));
    expect(viaApi.code).toBe(5);
    expect(viaApi.message).toBe(status.message);
    expect(viaApi.details[0]?.typeUrl).toBe("a.B");
    expect(dec(viaApi.details[0]?.value ?? new Uint8Array())).toBe("v");
    const back = toBinary(StatusSchema, create(StatusSchema, { code: 12, message: "method Bogus" }));
    expect(decodeStatus(back)).toEqual({ code: 12, message: "method Bogus", details: [] });
  });

  it("reassembles frames split across chunks, byte by byte", () => {
    const got: string[] = [];
    const reader = new FrameReader({
      frame: (id, _t, _f, p) => got.push(`${id}:${dec(p)}`),
      oversized: () => {},
    });
    const a = encodeResponseFrame(1, undefined, enc("hello"));
    const b = encodeResponseFrame(3, undefined, enc("world"));
    const all = Buffer.concat([a, b, a]);
    for (let i = 0; i < all.length; i++) reader.push(all.subarray(i, i + 1));
    reader.push(all);
    expect(got.length).toBe(6);
    expect(reader.pending).toBe(false);
  });
});

describe("client and server", () => {
  it("round-trips a call (async and sync handlers, empty payloads)", async () => {
    await echoServer();
    const client = await connect();
    expect(dec(await client.call(SERVICE, "Echo", enc("hi")))).toBe("hi");
    expect(dec(await client.call(SERVICE, "Sync", enc("sync")))).toBe("sync");
    expect((await client.call(SERVICE, "Echo", new Uint8Array())).length).toBe(0);
    const st = await stat(sock);
    expect(st.mode & 0o777).toBe(0o600);
  });

  it("queues calls made before the socket connects", async () => {
    await echoServer();
    const client = createTtrpcClient(`unix://${sock}`);
    cleanups.push(() => client.close());
    const replies = await Promise.all([1, 2, 3].map((i) => client.call(SERVICE, "Echo", enc(`m${i}`))));
    expect(replies.map(dec)).toEqual(["m1", "m2", "m3"]);
  });

  it("runs many calls concurrently and matches out-of-order replies", async () => {
    await startServer((s) =>
      s.register(SERVICE, {
        Delay: async (p) => {
          await sleep(Number(dec(p)));
          return p;
        },
      }),
    );
    const client = await connect();
    const delays = Array.from({ length: 64 }, (_, i) => (64 - i) % 17);
    const finished: number[] = [];
    const replies = await Promise.all(
      delays.map(async (d, i) => {
        const r = dec(await client.call(SERVICE, "Delay", enc(String(d))));
        finished.push(i);
        return r;
      }),
    );
    expect(replies).toEqual(delays.map(String));
    expect(finished).not.toEqual([...finished].sort((a, b) => a - b));
  });

  it("uses odd, increasing stream ids and accepts replies in any order (raw server)", async () => {
    const seen: number[] = [];
    const raw: Server = createServer((s: Socket) => {
      const pending: Array<{ id: number; payload: Uint8Array }> = [];
      const reader = new FrameReader({
        frame: (id, type, _f, p) => {
          expect(type).toBe(MessageType.Request);
          seen.push(id);
          pending.push({ id, payload: decodeRequest(p).payload.slice() });
          if (pending.length === 3) {
            for (const r of pending.reverse()) s.write(encodeResponseFrame(r.id, undefined, r.payload));
          }
        },
        oversized: () => {},
      });
      s.on("data", (c: Buffer) => reader.push(c));
      s.on("error", () => {});
    });
    await new Promise<void>((r) => raw.listen(sock, r));
    cleanups.push(() => new Promise((r) => raw.close(r)));
    const client = await connect();
    const replies = await Promise.all(["a", "b", "c"].map((x) => client.call(SERVICE, "Echo", enc(x))));
    expect(replies.map(dec)).toEqual(["a", "b", "c"]);
    expect(seen).toEqual([1, 3, 5]);
  });

  it("sends metadata: client defaults, per-call values, per-call keys replace defaults", async () => {
    await echoServer();
    const client = await connect({ metadata: { [NAMESPACE_METADATA_KEY]: "berth", other: ["a", "b"] } });
    const perCall = new Map<string, string | string[]>([
      [NAMESPACE_METADATA_KEY, "ns2"],
      ["x", ["1"]],
    ]);
    const md = (b: Uint8Array) => new Map(JSON.parse(dec(b)) as Array<[string, string[]]>);
    expect(md(await client.call(SERVICE, "Meta", new Uint8Array()))).toEqual(
      new Map([
        [NAMESPACE_METADATA_KEY, ["berth"]],
        ["other", ["a", "b"]],
      ]),
    );
    const m2 = md(
      await client.call(SERVICE, "Meta", new Uint8Array(), {
        metadata: perCall,
      }),
    );
    expect(m2.get(NAMESPACE_METADATA_KEY)).toEqual(["ns2"]);
    expect(m2.get("other")).toEqual(["a", "b"]);
    expect(m2.get("x")).toEqual(["1"]);
  });

  it("maps errors to codes and back, keeping the message", async () => {
    await echoServer();
    const client = await connect();
    const err = await client.call(SERVICE, "Fail", new Uint8Array()).catch((e: unknown) => e);
    expect(isNotFound(err)).toBe(true);
    expect((err as Error).message).toBe("thing x: not found");
    const crash = await client.call(SERVICE, "Crash", new Uint8Array()).catch((e: unknown) => e);
    expect(errorKind(crash)).toBe("Unknown");
    expect((crash as Error).message).toBe("boom");
  });

  it("answers Unimplemented for unknown services and methods", async () => {
    await echoServer();
    const client = await connect();
    const svc = await client.call("nope.Service", "X", new Uint8Array()).catch((e: unknown) => e);
    expect(isNotImplemented(svc)).toBe(true);
    expect((svc as Error).message).toBe("service nope.Service");
    const m = await client.call(SERVICE, "Bogus", new Uint8Array()).catch((e: unknown) => e);
    expect(isNotImplemented(m)).toBe(true);
    expect((m as Error).message).toBe("method Bogus");
  });

  it("enforces timeouts on both sides", async () => {
    let seen: TtrpcCallContext | undefined;
    let aborted: unknown;
    await startServer((s) =>
      s.register(SERVICE, {
        Hang: (_p, ctx) => {
          seen = ctx;
          return new Promise((_resolve, reject) => {
            ctx.signal.addEventListener("abort", () => {
              aborted = ctx.signal.reason;
              reject(ctx.signal.reason);
            });
          });
        },
      }),
    );
    const client = await connect();
    const t0 = Date.now();
    const err = await client.call(SERVICE, "Hang", new Uint8Array(), { timeoutMs: 100 }).catch((e: unknown) => e);
    expect(isDeadlineExceeded(err)).toBe(true);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(90);
    await sleep(50);
    expect(seen?.deadline).toBeTypeOf("number");
    expect(isDeadlineExceeded(aborted)).toBe(true);
    // The connection stays usable; the late reply is dropped.
    expect(client.closed).toBe(false);
  });

  it("cancels a call with an AbortSignal", async () => {
    await startServer((s) => s.register(SERVICE, { Hang: () => new Promise(() => {}) }));
    const client = await connect();
    const ac = new AbortController();
    const p = client.call(SERVICE, "Hang", new Uint8Array(), { signal: ac.signal });
    ac.abort();
    expect(isCanceled(await p.catch((e: unknown) => e))).toBe(true);
    expect(
      isCanceled(await client.call(SERVICE, "Hang", new Uint8Array(), { signal: ac.signal }).catch((e) => e)),
    ).toBe(true);
  });

  it("answers InvalidArgument for even stream ids and undecodable requests", async () => {
    await echoServer();
    const peer = await rawPeer(sock);
    const good = encodeRequestFrame(2, encodeRequestPrefix(SERVICE, "Echo"), enc("x"), 0, undefined, undefined);
    peer.socket.write(good as Buffer);
    const f0 = await peer.frame(0);
    expect(f0.streamId).toBe(2);
    expect(decodeResponse(f0.payload).status?.code).toBe(3);

    const garbage = Buffer.alloc(HEADER_LENGTH + 3);
    writeHeader(garbage, 3, 5, MessageType.Request, 0);
    garbage.set([0x0a, 0x7f, 0x00], HEADER_LENGTH); // string field claiming 127 bytes
    peer.socket.write(garbage);
    const f1 = await peer.frame(1);
    expect(f1.streamId).toBe(5);
    expect(decodeResponse(f1.payload).status?.code).toBe(3);
  });

  it("rejects oversized frames from a client without dropping the connection", async () => {
    await echoServer();
    const peer = await rawPeer(sock);
    const length = MAX_MESSAGE_LENGTH + 1;
    const header = Buffer.alloc(HEADER_LENGTH);
    writeHeader(header, length, 1, MessageType.Request, 0);
    peer.socket.write(header);
    peer.socket.write(Buffer.alloc(length));
    const f0 = await peer.frame(0);
    expect(f0.streamId).toBe(1);
    expect(decodeResponse(f0.payload).status?.code).toBe(8);
    // The stream stays in sync: the next request works.
    const next = encodeRequestFrame(3, encodeRequestPrefix(SERVICE, "Echo"), enc("after"), 0, undefined, undefined);
    peer.socket.write(next as Buffer);
    const f1 = await peer.frame(1);
    expect(f1.streamId).toBe(3);
    expect(dec(decodeResponse(f1.payload).payload)).toBe("after");
  });

  it("refuses to send oversized requests and responses", async () => {
    await startServer((s) => s.register(SERVICE, { Big: () => new Uint8Array(MAX_MESSAGE_LENGTH) }));
    const client = await connect();
    const err = await client.call(SERVICE, "Big", new Uint8Array(MAX_MESSAGE_LENGTH)).catch((e: unknown) => e);
    expect(isResourceExhausted(err)).toBe(true);
    const err2 = await client.call(SERVICE, "Big", new Uint8Array()).catch((e: unknown) => e);
    expect(isResourceExhausted(err2)).toBe(true);
    expect(client.closed).toBe(false);
  });

  it("fails a call whose response frame is oversized (raw server)", async () => {
    const raw: Server = createServer((s: Socket) => {
      const reader = new FrameReader({
        frame: (id) => {
          const header = Buffer.alloc(HEADER_LENGTH);
          writeHeader(header, MAX_MESSAGE_LENGTH + 10, id, MessageType.Response, 0);
          s.write(header);
          s.write(Buffer.alloc(MAX_MESSAGE_LENGTH + 10));
          s.write(encodeResponseFrame(id + 2, undefined, enc("second")));
        },
        oversized: () => {},
      });
      s.on("data", (c: Buffer) => reader.push(c));
      s.on("error", () => {});
    });
    await new Promise<void>((r) => raw.listen(sock, r));
    cleanups.push(() => new Promise((r) => raw.close(r)));
    const client = await connect();
    const first = client.call(SERVICE, "A", new Uint8Array()).catch((e: unknown) => e);
    const second = client.call(SERVICE, "B", new Uint8Array());
    expect(isResourceExhausted(await first)).toBe(true);
    // stream id 3 got the frame the raw server addressed to id+2
    expect(dec(await second)).toBe("second");
  });

  it("fails pending calls with Unavailable when the server closes", async () => {
    let signal: AbortSignal | undefined;
    const server = await startServer((s) =>
      s.register(SERVICE, {
        Hang: (_p, ctx) => {
          signal = ctx.signal;
          return new Promise(() => {});
        },
      }),
    );
    const client = await connect();
    let closedWith: unknown = "not called";
    client.onClose((e) => {
      closedWith = e;
    });
    const p = client.call(SERVICE, "Hang", new Uint8Array()).catch((e: unknown) => e);
    await sleep(20);
    await server.close();
    const err = await p;
    expect(isUnavailable(err)).toBe(true);
    expect((err as Error).message).toBe("ttrpc: closed");
    expect(signal?.aborted).toBe(true);
    expect(isCanceled(signal?.reason)).toBe(true);
    expect(client.closed).toBe(true);
    expect(closedWith).toBeUndefined();
    expect(isUnavailable(await client.call(SERVICE, "Hang", new Uint8Array()).catch((e: unknown) => e))).toBe(true);
    await expect(stat(sock)).rejects.toMatchObject({ code: "ENOENT" });
  });

  it("fails to connect with Unavailable", async () => {
    const err = await connectTtrpcClient(join(dir, "missing.sock")).catch((e: unknown) => e);
    expect(isUnavailable(err)).toBe(true);
    const lazy = createTtrpcClient(join(dir, "missing.sock"));
    expect(isUnavailable(await lazy.call(SERVICE, "X", new Uint8Array()).catch((e: unknown) => e))).toBe(true);
  });

  it("replaces a stale socket file on listen", async () => {
    // A process killed while listening leaves its socket file behind.
    const child = spawn(
      process.execPath,
      ["-e", "require('net').createServer().listen(process.argv[1], () => process.kill(process.pid, 'SIGKILL'))", sock],
      { stdio: "ignore" },
    );
    await new Promise((r) => child.once("exit", r));
    expect((await stat(sock)).isSocket()).toBe(true);
    await echoServer();
    const client = await connect();
    expect(dec(await client.call(SERVICE, "Echo", enc("ok")))).toBe("ok");
  });

  it("refuses to replace a file that is not a socket", async () => {
    await writeFile(sock, "x");
    await expect(createTtrpcServer().listen(sock)).rejects.toThrow(/not a socket/);
  });
});

describe("typed services", () => {
  it("serves and calls containerd.task.v2.Task with protobuf-es messages", async () => {
    let ns: readonly string[] | undefined;
    await startServer((s) =>
      s.registerService(Task, {
        state: (req, ctx) => {
          ns = ctx.metadata.get(NAMESPACE_METADATA_KEY);
          if (req.id !== "t1") throw new NotFoundError(`container ${req.id}`);
          return { id: req.id, bundle: "/b", pid: 42, execId: req.execId };
        },
        connect: async () => ({ shimPid: 7, taskPid: 8 }),
      }),
    );
    const client = await connect({ metadata: { [NAMESPACE_METADATA_KEY]: "default" } });
    const task = createTtrpcServiceClient(client, Task);
    const st = await task.state({ id: "t1", execId: "e" });
    expect(st.pid).toBe(42);
    expect(st.bundle).toBe("/b");
    expect(st.execId).toBe("e");
    expect(ns).toEqual(["default"]);
    expect((await task.connect({ id: "t1" })).shimPid).toBe(7);
    const nf = await task.state({ id: "zz" }).catch((e: unknown) => e);
    expect(isNotFound(nf)).toBe(true);
    expect((nf as Error).message).toBe("container zz: not found");
    const unimpl = await task.pids({ id: "t1" }).catch((e: unknown) => e);
    expect(isNotImplemented(unimpl)).toBe(true);
    expect((unimpl as Error).message).toBe("method Pids");
  });

  it("answers InvalidArgument when the request payload does not decode", async () => {
    await startServer((s) => s.registerService(Task, { state: (req) => ({ id: req.id }) }));
    const client = await connect();
    const bad = new Uint8Array([0x0a, 0x50]); // field 1 claims 80 bytes
    const err = await client.call("containerd.task.v2.Task", "State", bad).catch((e: unknown) => e);
    expect(isInvalidArgument(err)).toBe(true);
    const ok = toBinary(StateRequestSchema, create(StateRequestSchema, { id: "x" }));
    expect((await client.call("containerd.task.v2.Task", "State", ok)).length).toBeGreaterThan(0);
  });
});

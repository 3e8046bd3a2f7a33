/**
 * `content ingest` over a real socket: the direct Content.Write path (fast-write.ts) against a connect-node
 * HTTP/2 server, checked against the connect path the same command takes with `--debug`: same bytes, same
 * headers, same errors.
 */
import { createHash } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import * as http2 from "node:http2";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Content, WriteAction, type WriteContentRequest } from "@berth/api/services/content/v1";
import { Leases } from "@berth/api/services/leases/v1";
import { Code, type ConnectRouter, ConnectError } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createConnection } from "../src/connection.js";
import { openDirectWrite } from "../src/fast-write.js";
import { createBufferOutput } from "../src/output.js";
import { runCli } from "../src/program.js";

const MiB = 1 << 20;

interface Ingest {
  data: Buffer[];
  size: number;
}

/** What the fake daemon saw and how it should answer. */
interface Daemon {
  /** Open ingests by ref (resumable). */
  readonly ingests: Map<string, Ingest>;
  /** Committed blobs by digest. */
  readonly blobs: Map<string, Buffer>;
  /** Request headers of each Write call. */
  readonly headers: Record<string, string>[];
  /** Write requests received (data left out), per call. */
  readonly requests: Omit<WriteContentRequest, "data" | "$typeName">[][];
  /** Answers STAT with Unavailable this many times (a locked ref). */
  lockedStats: number;
  /** Fails the request with this action (COMMIT, or WRITE at the given offset). */
  fail?: { action: WriteAction; offset?: number; error: ConnectError };
  /** Never answers STAT (for deadlines). */
  hang: boolean;
}

function sha256(data: Buffer): string {
  return `sha256:${createHash("sha256").update(data).digest("hex")}`;
}

function routes(d: Daemon) {
  return (r: ConnectRouter) => {
    r.service(Leases, {
      create: (req) => ({ lease: { id: req.id, labels: req.labels } }),
      delete: () => ({}),
    });
    r.service(Content, {
      async *write(requests, ctx) {
        const headers: Record<string, string> = {};
        ctx.requestHeader.forEach((v, k) => {
          headers[k] = v;
        });
        d.headers.push(headers);
        const seen: Daemon["requests"][number] = [];
        d.requests.push(seen);
        let ingest: Ingest | undefined;
        let ref = "";
        for await (const req of requests) {
          seen.push({
            action: req.action,
            ref: req.ref,
            total: req.total,
            expected: req.expected,
            offset: req.offset,
            labels: req.labels,
          });
          const fail = d.fail;
          if (fail && fail.action === req.action && (fail.offset === undefined || BigInt(fail.offset) === req.offset)) {
            throw fail.error;
          }
          if (req.action === WriteAction.STAT) {
            if (d.hang) await new Promise((resolve) => setTimeout(resolve, 10_000));
            if (d.lockedStats > 0) {
              d.lockedStats--;
              throw new ConnectError(`ref ${req.ref} locked for 1s: unavailable`, Code.Unavailable);
            }
            ref = req.ref;
            ingest = d.ingests.get(ref) ?? { data: [], size: 0 };
            d.ingests.set(ref, ingest);
            yield { action: req.action, offset: BigInt(ingest.size), total: req.total };
          } else if (req.action === WriteAction.WRITE && ingest !== undefined) {
            if (Number(req.offset) !== ingest.size) {
              throw new ConnectError(`write offset ${req.offset} != ${ingest.size}`, Code.OutOfRange);
            }
            ingest.data.push(Buffer.from(req.data));
            ingest.size += req.data.length;
            yield { action: req.action, offset: BigInt(ingest.size), digest: sha256(Buffer.concat(ingest.data)) };
          } else if (req.action === WriteAction.COMMIT && ingest !== undefined) {
            const blob = Buffer.concat(ingest.data);
            const digest = sha256(blob);
            if (req.expected !== "" && req.expected !== digest) {
              throw new ConnectError(
                `unexpected commit digest ${digest}, expected ${req.expected}`,
                Code.FailedPrecondition,
              );
            }
            d.blobs.set(digest, blob);
            d.ingests.delete(ref);
            yield { action: req.action, offset: BigInt(blob.length), digest };
          }
        }
      },
    });
  };
}

let dir: string;
let socket: string;
let server: http2.Http2Server;
const sessions = new Set<http2.ServerHttp2Session>();
let daemon: Daemon;
let blob: Buffer;
let blobPath: string;

function resetDaemon(): void {
  daemon.ingests.clear();
  daemon.blobs.clear();
  daemon.headers.length = 0;
  daemon.requests.length = 0;
  daemon.lockedStats = 0;
  daemon.fail = undefined;
  daemon.hang = false;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "berth-fast-write-"));
  socket = join(dir, "d.sock");
  daemon = { ingests: new Map(), blobs: new Map(), headers: [], requests: [], lockedStats: 0, hang: false };
  server = http2.createServer(connectNodeAdapter({ routes: routes(daemon), grpc: true, connect: false }));
  server.on("session", (session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
  });
  await new Promise<void>((resolve) => server.listen(socket, resolve));
  // 5.5 MiB: several full WRITEs and a short one
  blob = Buffer.alloc(5 * MiB + MiB / 2);
  for (let i = 0; i < blob.length; i += 4) blob.writeUInt32LE((i * 2654435761) >>> 0, i);
  blobPath = join(dir, "blob");
  await writeFile(blobPath, blob);
});

afterAll(async () => {
  for (const session of sessions) session.destroy();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await rm(dir, { recursive: true, force: true });
});

/** Runs `berth -a <socket> [--debug] content ingest …`; stderr without the debug trace. */
async function ingest(debug: boolean, ...args: string[]): Promise<{ code: number; err: string }> {
  const out = createBufferOutput();
  const code = await runCli(["-a", socket, ...(debug ? ["--debug"] : []), "content", "ingest", ...args], {
    env: {},
    out,
    clientInfo: { version: "0.1.0", revision: "abc", nodeVersion: "v20.0.0" },
  });
  const err = out.err
    .split("\n")
    .filter((l) => l.startsWith("berth: ") && !l.startsWith("berth: debug:"))
    .join("\n");
  return { code, err };
}

/** Both paths, one after the other, from the same daemon state. */
async function bothPaths(setup: () => void, ...args: string[]) {
  resetDaemon();
  setup();
  const direct = await ingest(false, ...args);
  const directSeen = { headers: [...daemon.headers], requests: [...daemon.requests], blobs: new Map(daemon.blobs) };
  resetDaemon();
  setup();
  const connect = await ingest(true, ...args);
  const connectSeen = { headers: [...daemon.headers], requests: [...daemon.requests], blobs: new Map(daemon.blobs) };
  return { direct, directSeen, connect, connectSeen };
}

/** Headers that differ from call to call by nature. */
function stable(headers: Record<string, string>): Record<string, string> {
  const { "containerd-lease": lease, "grpc-timeout": timeout, ...rest } = headers;
  return {
    ...rest,
    "containerd-lease": lease === undefined ? "(none)" : "(set)",
    ...(timeout ? { "grpc-timeout": "(set)" } : {}),
  };
}

describe("direct Content.Write", () => {
  it("is offered only by a socket connection without extra interceptors", () => {
    const plain = createConnection({ address: socket, namespace: "default" });
    const traced = createConnection({ address: socket, namespace: "default", interceptors: [(next) => next] });
    try {
      expect(plain.direct?.namespace).toBe("default");
      expect(traced.direct).toBeUndefined();
    } finally {
      plain.close();
      traced.close();
    }
  });

  it("ingests a file with the same requests and headers as the connect path", async () => {
    const r = await bothPaths(
      () => {},
      "--file",
      blobPath,
      "--expected-digest",
      sha256(blob),
      "--timeout",
      "30s",
      "b1",
    );
    expect(r.direct).toEqual({ code: 0, err: "" });
    expect(r.connect).toEqual({ code: 0, err: "" });
    expect(r.directSeen.blobs.get(sha256(blob))?.equals(blob)).toBe(true);
    expect(r.directSeen.requests).toEqual(r.connectSeen.requests);
    expect(r.directSeen.requests[0]?.map((q) => q.action)).toEqual([
      WriteAction.STAT,
      ...Array(6).fill(WriteAction.WRITE),
      WriteAction.COMMIT,
    ]);
    expect(r.directSeen.headers.map(stable)).toEqual(r.connectSeen.headers.map(stable));
    expect(stable(r.directSeen.headers[0] ?? {})).toMatchObject({
      "content-type": "application/grpc+proto",
      te: "trailers",
      "containerd-namespace": "default",
      "containerd-lease": "(set)",
      "grpc-timeout": "(set)",
      "user-agent": expect.stringMatching(/^connect-es\//),
    });
  });

  it("resumes an ingest from the offset the daemon reports", async () => {
    const stored = 3 * MiB + 123;
    const r = await bothPaths(
      () => daemon.ingests.set("b2", { data: [blob.subarray(0, stored)], size: stored }),
      "--file",
      blobPath,
      "b2",
    );
    expect(r.direct).toEqual({ code: 0, err: "" });
    expect(r.directSeen.blobs.get(sha256(blob))?.equals(blob)).toBe(true);
    expect(r.directSeen.requests[0]?.[1]?.offset).toBe(BigInt(stored));
    expect(r.directSeen.requests).toEqual(r.connectSeen.requests);
  });

  it("resumes from standard input that cannot seek", async () => {
    resetDaemon();
    const stored = 2 * MiB;
    daemon.ingests.set("b3", { data: [blob.subarray(0, stored)], size: stored });
    const { StreamSource } = await import("../src/input.js");
    const { Readable } = await import("node:stream");
    const out = createBufferOutput();
    const chunks = Array.from({ length: Math.ceil(blob.length / 65536) }, (_, i) =>
      blob.subarray(i * 65536, (i + 1) * 65536),
    );
    const code = await runCli(["-a", socket, "content", "ingest", "b3"], {
      env: {},
      out,
      stdin: () => new StreamSource(Readable.from(chunks)),
    });
    expect(out.err).toBe("");
    expect(code).toBe(0);
    expect(daemon.blobs.get(sha256(blob))?.equals(blob)).toBe(true);
  });

  it("retries a locked ref", async () => {
    const r = await bothPaths(
      () => {
        daemon.lockedStats = 2;
      },
      "--file",
      blobPath,
      "b4",
    );
    expect(r.direct).toEqual({ code: 0, err: "" });
    expect(r.directSeen.requests.length).toBe(3);
    expect(r.connectSeen.requests.length).toBe(3);
  });

  it.each([
    [
      "a failed commit",
      {
        action: WriteAction.COMMIT,
        error: new ConnectError("unexpected commit size 3, expected 4", Code.FailedPrecondition),
      },
    ],
    [
      "a failed write",
      {
        action: WriteAction.WRITE,
        offset: 2 * MiB,
        error: new ConnectError("write at 2097152: bad offset", Code.OutOfRange),
      },
    ],
    ["a failed stat", { action: WriteAction.STAT, error: new ConnectError("disk on fire", Code.Internal) }],
    [
      "an error message needing percent-encoding",
      { action: WriteAction.COMMIT, error: new ConnectError('naïve 100% "wrong"\nline', Code.AlreadyExists) },
    ],
  ])("reports %s as the connect path does", async (_name, fail) => {
    const r = await bothPaths(
      () => {
        daemon.fail = fail;
      },
      "--file",
      blobPath,
      "b5",
    );
    expect(r.direct).toEqual(r.connect);
    expect(r.direct.code).toBe(fail.error.code === Code.AlreadyExists ? 0 : 1);
  });

  it("reports a mismatching digest as the connect path does", async () => {
    const r = await bothPaths(() => {}, "--file", blobPath, "--expected-digest", `sha256:${"0".repeat(64)}`, "b6");
    expect(r.direct).toEqual(r.connect);
    expect(r.direct.err).toMatch(/^berth: failed commit on ref "b6": commit failed: unexpected commit digest/);
  });

  it("reports a deadline as the connect path does", async () => {
    const r = await bothPaths(
      () => {
        daemon.hang = true;
      },
      "--file",
      blobPath,
      "--timeout",
      "300ms",
      "b7",
    );
    expect(r.direct).toEqual(r.connect);
    expect(r.direct.err).toContain("context deadline exceeded");
  });

  it("delivers responses and the status through the raw stream API", async () => {
    resetDaemon();
    const conn = createConnection({ address: socket, namespace: "ns1" });
    try {
      const direct = conn.direct;
      if (direct === undefined) throw new Error("no direct streams");
      const call = await openDirectWrite(direct, { headers: { "containerd-lease": "l1" } });
      await call.send({ action: WriteAction.STAT, ref: "raw" });
      expect((await call.recv()).offset).toBe(0n);
      await call.send({ action: WriteAction.WRITE, offset: 0n, data: blob.subarray(0, MiB) });
      await call.send({ action: WriteAction.WRITE, offset: 5n, data: new Uint8Array(10) });
      expect((await call.recv()).offset).toBe(BigInt(MiB));
      const err = await call.recv().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ConnectError);
      expect((err as ConnectError).code).toBe(Code.OutOfRange);
      expect((err as ConnectError).rawMessage).toBe(`write offset 5 != ${MiB}`);
      await call.close();
      expect(daemon.headers[0]).toMatchObject({ "containerd-namespace": "ns1", "containerd-lease": "l1" });
    } finally {
      conn.close();
    }
  });
});

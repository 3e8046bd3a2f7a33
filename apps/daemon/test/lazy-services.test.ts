import { createHash } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Content, WriteAction } from "@berth/api/services/content/v1";
import { Version } from "@berth/api/services/version/v1";
import { createLocalStore } from "@berth/content-store/local";
import { contentService } from "@berth/content-store/service";
import { Code, ConnectError, type ConnectRouter, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterEach, describe, expect, it } from "vitest";
import { type GrpcServer, startGrpcServer } from "../src/server/grpc-server.js";

const silent = { debug() {}, info() {}, warn() {}, error() {} };

describe("services loaded on their first call", () => {
  let dir: string | undefined;
  let server: GrpcServer | undefined;
  afterEach(async () => {
    await server?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
    server = undefined;
    dir = undefined;
  });

  async function start(lazy: Array<[string, () => Promise<(router: ConnectRouter) => void>]>, warmUpDelayMs = -1) {
    dir = await mkdtemp(join(tmpdir(), "berth-lazy-"));
    const address = join(dir, "s.sock");
    server = await startGrpcServer({
      address,
      uid: 0,
      gid: 0,
      routes: () => {},
      lazyServices: lazy,
      warmUpDelayMs,
      maxRecvMessageSize: 16 << 20,
      maxSendMessageSize: 16 << 20,
      log: silent,
    });
    return createGrpcTransport({
      baseUrl: "http://localhost",
      nodeOptions: { createConnection: () => net.connect(address) },
    });
  }

  it("loads a service once for concurrent first calls and serves unary calls", async () => {
    let loads = 0;
    const transport = await start([
      [
        "containerd.services.version.v1.Version",
        async () => {
          loads++;
          await new Promise((r) => setTimeout(r, 20));
          return (router) => router.service(Version, { version: () => ({ version: "9.9.9", revision: "r" }) });
        },
      ],
    ]);
    const client = createClient(Version, transport);
    const answers = await Promise.all([client.version({}), client.version({}), client.version({})]);
    expect(answers.map((a) => a.version)).toEqual(["9.9.9", "9.9.9", "9.9.9"]);
    expect((await client.version({})).revision).toBe("r");
    expect(loads).toBe(1);
  });

  it("serves streaming calls of a lazily loaded service (content Write on the fast path)", async () => {
    const store = createLocalStore({ root: join(await mkdtemp(join(tmpdir(), "berth-lazy-store-")), "c") });
    const transport = await start([
      [
        "containerd.services.content.v1.Content",
        async () => (router) => router.service(Content, contentService(store)),
      ],
    ]);
    const client = createClient(Content, transport);
    const data = Buffer.from("hello lazy\n");
    const expected = `sha256:${createHash("sha256").update(data).digest("hex")}`;
    async function* requests() {
      yield { action: WriteAction.STAT, ref: "lazy", total: BigInt(data.length), expected };
      yield { action: WriteAction.COMMIT, data, total: BigInt(data.length), expected };
    }
    for await (const _ of client.write(requests(), { headers: { "containerd-namespace": "t" } })) {
    }
    const info = await client.info({ digest: expected }, { headers: { "containerd-namespace": "t" } });
    expect(Number(info.info?.size)).toBe(data.length);
  });

  it("answers Unavailable when loading fails, and loads on a later call", async () => {
    let fail = true;
    const transport = await start([
      [
        "containerd.services.version.v1.Version",
        async () => {
          if (fail) throw new Error("disk on fire");
          return (router) => router.service(Version, { version: () => ({ version: "1" }) });
        },
      ],
    ]);
    const client = createClient(Version, transport);
    const err = await client.version({}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.Unavailable);
    fail = false;
    expect((await client.version({})).version).toBe("1");
  });

  it("loads lazy services in the background soon after start-up", async () => {
    let loads = 0;
    const transport = await start(
      [
        [
          "containerd.services.version.v1.Version",
          async () => {
            loads++;
            return (router) => router.service(Version, { version: () => ({ version: "warm" }) });
          },
        ],
      ],
      10,
    );
    await new Promise((r) => setTimeout(r, 200));
    expect(loads).toBe(1);
    expect((await createClient(Version, transport).version({})).version).toBe("warm");
    expect(loads).toBe(1);
  });

  it("leaves unknown services Unimplemented", async () => {
    const transport = await start([]);
    const err = await createClient(Version, transport)
      .version({})
      .catch((e: unknown) => e);
    expect((err as ConnectError).code).toBe(Code.Unimplemented);
  });
});

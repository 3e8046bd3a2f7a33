import { existsSync } from "node:fs";
import { readdir } from "node:fs/promises";
import { dirname, join } from "node:path";
import { Content, WriteAction, type WriteContentRequestSchema } from "@berth/api/services/content/v1";
import { Leases } from "@berth/api/services/leases/v1";
import { contentService } from "@berth/content-store/service";
import { toConnectError } from "@berth/errdefs/connect";
import { LEASE_HEADER, NAMESPACE_HEADER } from "@berth/identifiers";
import { digestOf } from "@berth/oci-spec";
import type { MessageInitShape } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  type Interceptor,
  type StreamResponse,
  createClient,
  createRouterTransport,
} from "@connectrpc/connect";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { leasesService } from "../src/service/index.js";
import { type Fixture, fixture, put } from "./helpers.js";

/*
 * Hostile input for the Content and Leases services as the daemon serves them (the namespaced metadata
 * store over a local backend, in-process through the Connect router): every bad call gets containerd's code,
 * and nothing stored is lost or leaks into another namespace.
 */

async function* mapStreamErrors<T>(messages: AsyncIterable<T>): AsyncIterable<T> {
  try {
    yield* messages;
  } catch (err) {
    throw toConnectError(err);
  }
}

const errorInterceptor: Interceptor = (next) => async (req) => {
  try {
    const res = await next(req);
    return res.stream ? ({ ...res, message: mapStreamErrors(res.message) } as StreamResponse) : res;
  } catch (err) {
    throw toConnectError(err);
  }
};

type WriteInit = MessageInitShape<typeof WriteContentRequestSchema>;

const NS = "tenant";
const OTHER = "intruder";
const DATA = Buffer.from("precious bytes that must survive");
const DIGEST = digestOf(DATA);
const LABELS = { "containerd.io/gc.root": "keep", owner: "tenant" };
const hdr = (namespace: string, lease?: string) => ({
  headers:
    lease === undefined ? { [NAMESPACE_HEADER]: namespace } : { [NAMESPACE_HEADER]: namespace, [LEASE_HEADER]: lease },
});

async function code(p: Promise<unknown> | (() => Promise<unknown>)): Promise<Code | "ok"> {
  try {
    await (typeof p === "function" ? p() : p);
    return "ok";
  } catch (err) {
    if (err instanceof ConnectError) return err.code;
    throw err;
  }
}

let f: Fixture;
let content: ReturnType<typeof createClient<typeof Content>>;
let leases: ReturnType<typeof createClient<typeof Leases>>;

async function drain<T>(stream: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const m of stream) out.push(m);
  return out;
}

async function* requests(items: WriteInit[]): AsyncIterable<WriteInit> {
  for (const item of items) yield item;
}

const write = (items: WriteInit[], namespace = NS, lease?: string) =>
  drain(content.write(requests(items), hdr(namespace, lease)));

const readAll = async (namespace: string, digest: string, offset = 0n) =>
  Buffer.concat((await drain(content.read({ digest, offset }, hdr(namespace)))).map((m) => m.data));

/** What every test starts from and must still find after each bad call. */
async function assertIntact(): Promise<void> {
  const info = await content.info({ digest: DIGEST }, hdr(NS));
  expect(info.info?.labels).toEqual(LABELS);
  expect((await readAll(NS, DIGEST)).equals(DATA)).toBe(true);
  const st = await content.status({ ref: "half" }, hdr(NS));
  expect(st.status?.offset).toBe(4n);
  const listed = await leases.listResources({ id: "held" }, hdr(NS));
  expect(listed.resources.map((r) => r.id)).toEqual([DIGEST]);
  expect(f.onDisk(DIGEST)).toBe(true);
}

beforeEach(async () => {
  f = await fixture();
  const transport = createRouterTransport(
    (router) => {
      router.service(Content, contentService(f.db.content));
      router.service(Leases, leasesService(f.db.leases));
    },
    { router: { interceptors: [errorInterceptor] } },
  );
  content = createClient(Content, transport);
  leases = createClient(Leases, transport);
  await put(f.cs, NS, DATA.toString(), { labels: LABELS });
  await leases.create({ id: "held" }, hdr(NS));
  await leases.addResource({ id: "held", resource: { id: DIGEST, type: "content" } }, hdr(NS));
  await write([{ action: WriteAction.WRITE, ref: "half", data: Buffer.from("half") }]);
  await assertIntact();
});

afterEach(async () => {
  await f.dispose();
});

describe("content service under hostile input", () => {
  it("answers malformed digests and unknown algorithms with InvalidArgument", async () => {
    const bad = [
      "",
      "nope",
      "sha256:xyz",
      `sha256:${"a".repeat(63)}`,
      `sha256:${"A".repeat(64)}`,
      `md5:${"a".repeat(32)}`,
      `sha1024:${"a".repeat(64)}`,
      `sha256:${"a".repeat(64)}/../../etc/passwd`,
      "../../../etc/passwd",
    ];
    for (const digest of bad) {
      expect(await code(content.info({ digest }, hdr(NS))), digest).toBe(Code.InvalidArgument);
      expect(await code(content.delete({ digest }, hdr(NS))), digest).toBe(Code.InvalidArgument);
      expect(await code(readAll(NS, digest)), digest).toBe(Code.InvalidArgument);
      expect(await code(content.update({ info: { digest, labels: { a: "b" } } }, hdr(NS))), digest).toBe(
        Code.InvalidArgument,
      );
      expect(
        await code(write([{ action: WriteAction.STAT, ref: "bad-expected", expected: digest || "x" }])),
        digest,
      ).toBe(Code.InvalidArgument);
      await assertIntact();
    }
    expect(await code(content.status({ ref: "bad-expected" }, hdr(NS)))).toBe(Code.NotFound);
  });

  it("answers unknown digests and refs with NotFound", async () => {
    const unknown = digestOf("never stored");
    expect(await code(content.info({ digest: unknown }, hdr(NS)))).toBe(Code.NotFound);
    expect(await code(content.delete({ digest: unknown }, hdr(NS)))).toBe(Code.NotFound);
    expect(await code(readAll(NS, unknown))).toBe(Code.NotFound);
    expect(await code(content.update({ info: { digest: unknown, labels: { a: "b" } } }, hdr(NS)))).toBe(Code.NotFound);
    expect(await code(content.status({ ref: "no-such-ref" }, hdr(NS)))).toBe(Code.NotFound);
    expect(await code(content.abort({ ref: "no-such-ref" }, hdr(NS)))).toBe(Code.NotFound);
    await assertIntact();
  });

  it("rejects labels over containerd's size limit, keeps many small ones, rejects other field paths", async () => {
    const huge = "v".repeat(4097);
    expect(await code(content.update({ info: { digest: DIGEST, labels: { big: huge } } }, hdr(NS)))).toBe(
      Code.InvalidArgument,
    );
    expect(
      await code(
        content.update(
          { info: { digest: DIGEST, labels: { big: huge } }, updateMask: { paths: ["labels.big"] } },
          hdr(NS),
        ),
      ),
    ).toBe(Code.InvalidArgument);
    expect(await code(content.update({ info: { digest: DIGEST, labels: { ["k".repeat(5000)]: "v" } } }, hdr(NS)))).toBe(
      Code.InvalidArgument,
    );
    for (const path of ["size", "digest", "createdat", "labels..", ""]) {
      if (path === "labels..") continue; // a label key may contain dots
      expect(
        await code(content.update({ info: { digest: DIGEST, labels: {} }, updateMask: { paths: [path] } }, hdr(NS))),
        path,
      ).toBe(Code.InvalidArgument);
    }
    await assertIntact();

    // A commit with an oversized label commits nothing.
    const other = Buffer.from("labelled too heavily");
    expect(
      await code(
        write([
          {
            action: WriteAction.COMMIT,
            ref: "heavy",
            data: other,
            total: BigInt(other.length),
            expected: digestOf(other),
            labels: { big: huge },
          },
        ]),
      ),
    ).toBe(Code.InvalidArgument);
    expect(await code(content.info({ digest: digestOf(other) }, hdr(NS)))).toBe(Code.NotFound);
    await assertIntact();

    // containerd limits each label's size, not their number.
    const many = Object.fromEntries(Array.from({ length: 1000 }, (_, i) => [`example.com/k${i}`, `v${i}`]));
    await content.update({ info: { digest: DIGEST, labels: many }, updateMask: { paths: ["labels"] } }, hdr(NS));
    expect(Object.keys((await content.info({ digest: DIGEST }, hdr(NS))).info?.labels ?? {})).toHaveLength(1000);
    await content.update({ info: { digest: DIGEST, labels: LABELS } }, hdr(NS));
    await assertIntact();
  });

  it("reads out of range with OutOfRange and clamps a negative offset as containerd does", async () => {
    expect(await code(readAll(NS, DIGEST, BigInt(DATA.length + 1)))).toBe(Code.OutOfRange);
    expect((await readAll(NS, DIGEST, BigInt(DATA.length))).length).toBe(0);
    expect((await readAll(NS, DIGEST, -5n)).equals(DATA)).toBe(true);
    expect((await readAll(NS, DIGEST, -(1n << 63n))).equals(DATA)).toBe(true);
    expect(
      Buffer.concat(
        (await drain(content.read({ digest: DIGEST, offset: 3n, size: 1n << 40n }, hdr(NS)))).map((m) => m.data),
      ).equals(DATA.subarray(3)),
    ).toBe(true);
    await assertIntact();
  });

  it("guards the write protocol: no ref, wrong offsets, locked refs, unknown leases", async () => {
    expect(await code(write([{ action: WriteAction.STAT, ref: "" }]))).toBe(Code.InvalidArgument);
    // A write not at the current offset.
    expect(await code(write([{ action: WriteAction.WRITE, ref: "half", offset: 99n, data: Buffer.from("x") }]))).toBe(
      Code.OutOfRange,
    );
    expect((await content.status({ ref: "half" }, hdr(NS))).status?.offset).toBe(4n);
    // An unknown action.
    expect(await code(write([{ action: 42 as WriteAction, ref: "half" }]))).toBe(Code.InvalidArgument);
    // A wrong digest or size at commit: FailedPrecondition, nothing committed, the ingest kept.
    const wrong = digestOf("something else");
    expect(await code(write([{ action: WriteAction.COMMIT, ref: "half", offset: 4n, expected: wrong }]))).toBe(
      Code.FailedPrecondition,
    );
    expect(await code(write([{ action: WriteAction.COMMIT, ref: "half", offset: 4n, total: 5n }]))).toBe(
      Code.FailedPrecondition,
    );
    expect(await code(content.info({ digest: wrong }, hdr(NS)))).toBe(Code.NotFound);
    await assertIntact();

    // A lease that does not exist: NotFound, and no ingest is left behind.
    expect(await code(write([{ action: WriteAction.STAT, ref: "leased" }], NS, "no-such-lease"))).toBe(Code.NotFound);
    expect(await code(content.status({ ref: "leased" }, hdr(NS)))).toBe(Code.NotFound);
    // A lease of another namespace is unknown here too.
    await leases.create({ id: "theirs" }, hdr(OTHER));
    expect(await code(write([{ action: WriteAction.STAT, ref: "leased" }], NS, "theirs"))).toBe(Code.NotFound);

    // Committing what already exists: AlreadyExists, the existing blob untouched.
    expect(await code(write([{ action: WriteAction.COMMIT, ref: "dup", data: DATA, expected: DIGEST }]))).toBe(
      Code.AlreadyExists,
    );
    await assertIntact();
  });

  it("gives a second writer on a locked ref Unavailable", async () => {
    let release = (): void => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    async function* held(): AsyncIterable<WriteInit> {
      yield { action: WriteAction.STAT, ref: "half" };
      await gate;
    }
    const first = drain(content.write(held(), hdr(NS)));
    // Let the first session open its writer.
    for (let i = 0; i < 50 && (await code(write([{ action: WriteAction.STAT, ref: "probe" }]))) !== "ok"; i++);
    expect(await code(write([{ action: WriteAction.WRITE, ref: "half", offset: 4n, data: Buffer.from("x") }]))).toBe(
      Code.Unavailable,
    );
    release();
    await first;
    await assertIntact();
  });

  it("keeps refs with path traversal inside the store", async () => {
    const dir = dirname(f.root);
    const before = await readdir(dir);
    for (const ref of ["../../../../escape", "/etc/passwd", "..", "a/../../b", "nul\u0000byte"]) {
      const data = Buffer.from(`data for ${ref}`);
      await write([{ action: WriteAction.WRITE, ref, data }]);
      expect((await content.status({ ref }, hdr(NS))).status?.offset).toBe(BigInt(data.length));
      await content.abort({ ref }, hdr(NS));
    }
    expect(await readdir(dir)).toEqual(before);
    for (const name of ["escape", "b"]) {
      expect(existsSync(join(dir, name))).toBe(false);
      expect(existsSync(join(dirname(dir), name))).toBe(false);
    }
    expect((await readdir(join(f.root, "ingest"))).length).toBe(1); // "half"
    await assertIntact();
  });

  it("never shows one namespace another's content or ingests", async () => {
    expect(await code(content.info({ digest: DIGEST }, hdr(OTHER)))).toBe(Code.NotFound);
    expect(await code(readAll(OTHER, DIGEST))).toBe(Code.NotFound);
    expect(await code(content.delete({ digest: DIGEST }, hdr(OTHER)))).toBe(Code.NotFound);
    expect(await code(content.update({ info: { digest: DIGEST, labels: { pwned: "1" } } }, hdr(OTHER)))).toBe(
      Code.NotFound,
    );
    expect((await drain(content.list({}, hdr(OTHER)))).flatMap((m) => m.info)).toEqual([]);
    expect(await code(content.status({ ref: "half" }, hdr(OTHER)))).toBe(Code.NotFound);
    expect(await code(content.abort({ ref: "half" }, hdr(OTHER)))).toBe(Code.NotFound);
    expect((await content.listStatuses({}, hdr(OTHER))).statuses).toEqual([]);
    // Writing the same ref elsewhere is a different ingest.
    await write([{ action: WriteAction.WRITE, ref: "half", data: Buffer.from("theirs!") }], OTHER);
    expect((await content.status({ ref: "half" }, hdr(OTHER))).status?.offset).toBe(7n);
    // Having the same bytes elsewhere gives that namespace its own record and labels only.
    await write(
      [{ action: WriteAction.COMMIT, ref: "copy", data: DATA, expected: DIGEST, labels: { mine: "1" } }],
      OTHER,
    );
    expect((await content.info({ digest: DIGEST }, hdr(OTHER))).info?.labels).toEqual({ mine: "1" });
    await content.delete({ digest: DIGEST }, hdr(OTHER));
    await assertIntact();
  });

  it("requires a valid namespace", async () => {
    expect(await code(content.info({ digest: DIGEST }))).toBe(Code.FailedPrecondition);
    for (const ns of ["bad/ns", "..", "-leading", "x".repeat(77)]) {
      expect(await code(content.info({ digest: DIGEST }, hdr(ns))), ns).toBe(Code.InvalidArgument);
      expect(await code(write([{ action: WriteAction.STAT, ref: "r" }], ns)), ns).toBe(Code.InvalidArgument);
      expect(await code(leases.list({}, hdr(ns))), ns).toBe(Code.InvalidArgument);
    }
    await assertIntact();
  });
});

describe("leases service under hostile input", () => {
  it("keeps odd lease ids opaque (as containerd does) and rejects oversized labels with InvalidArgument", async () => {
    // containerd takes any non-empty lease id as a key: traversal-looking ids stay plain, namespaced keys.
    for (const id of ["a/b", "..", "../../etc/passwd", "-x", "x".repeat(300), "sp ace", "ü"]) {
      expect(await code(leases.create({ id }, hdr(NS))), id).toBe("ok");
      expect((await leases.list({ filters: [`id==${JSON.stringify(id)}`] }, hdr(NS))).leases.map((l) => l.id)).toEqual([
        id,
      ]);
      expect(await code(leases.listResources({ id }, hdr(OTHER))), id).toBe(Code.NotFound);
      await leases.delete({ id }, hdr(NS));
    }
    expect(await code(leases.create({ id: "big", labels: { k: "v".repeat(4096) } }, hdr(NS)))).toBe(
      Code.InvalidArgument,
    );
    expect(await code(leases.create({ id: "big", labels: { ["k".repeat(4097)]: "" } }, hdr(NS)))).not.toBe(
      Code.Internal,
    );
    expect(await code(leases.list({ filters: ["(("] }, hdr(NS)))).toBe(Code.InvalidArgument);
    expect((await leases.list({}, hdr(NS))).leases.map((l) => l.id).filter((id) => id !== "big")).toEqual(["held"]);
    await assertIntact();
  });

  it("answers duplicates with AlreadyExists and unknown ids with NotFound", async () => {
    expect(await code(leases.create({ id: "held" }, hdr(NS)))).toBe(Code.AlreadyExists);
    expect(await code(leases.delete({ id: "nope" }, hdr(NS)))).toBe(Code.NotFound);
    expect(await code(leases.listResources({ id: "nope" }, hdr(NS)))).toBe(Code.NotFound);
    const resource = { id: DIGEST, type: "content" };
    expect(await code(leases.addResource({ id: "nope", resource }, hdr(NS)))).toBe(Code.NotFound);
    expect(await code(leases.deleteResource({ id: "nope", resource }, hdr(NS)))).toBe(Code.NotFound);
    await assertIntact();
  });

  it("validates resources", async () => {
    const add = (resource?: { id: string; type: string }) =>
      code(leases.addResource({ id: "held", ...(resource === undefined ? {} : { resource }) }, hdr(NS)));
    expect(await add()).toBe(Code.InvalidArgument);
    expect(await add({ id: "", type: "content" })).toBe(Code.InvalidArgument);
    expect(await add({ id: "sha256:nothex", type: "content" })).toBe(Code.InvalidArgument);
    expect(await add({ id: `md5:${"a".repeat(32)}`, type: "content" })).toBe(Code.InvalidArgument);
    expect(await add({ id: "k", type: "snapshots" })).toBe(Code.InvalidArgument);
    expect(await add({ id: "k", type: "snapshots/a/b" })).toBe(Code.InvalidArgument);
    expect(await add({ id: "x", type: "images" })).toBe(Code.Unimplemented);
    await assertIntact();
  });

  it("never shows one namespace another's leases", async () => {
    expect((await leases.list({}, hdr(OTHER))).leases).toEqual([]);
    expect(await code(leases.delete({ id: "held" }, hdr(OTHER)))).toBe(Code.NotFound);
    expect(await code(leases.listResources({ id: "held" }, hdr(OTHER)))).toBe(Code.NotFound);
    expect(await code(leases.addResource({ id: "held", resource: { id: DIGEST, type: "content" } }, hdr(OTHER)))).toBe(
      Code.NotFound,
    );
    expect(
      await code(leases.deleteResource({ id: "held", resource: { id: DIGEST, type: "content" } }, hdr(OTHER))),
    ).toBe(Code.NotFound);
    // The same id in another namespace is another lease.
    await leases.create({ id: "held" }, hdr(OTHER));
    await leases.delete({ id: "held" }, hdr(OTHER));
    await assertIntact();
  });
});

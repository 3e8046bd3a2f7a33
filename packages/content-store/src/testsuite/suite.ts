import { randomBytes } from "node:crypto";
import { isAlreadyExists, isFailedPrecondition, isInvalidArgument, isNotFound, isUnavailable } from "@berth/errdefs";
import { digestOf } from "@berth/oci-spec";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { ContentStore, Ctx, Info } from "../content.js";

export interface ContentSuiteFixture {
  readonly store: ContentStore;
  cleanup(): Promise<void>;
  /**
   * Optional: makes every abandoned ingest (no writer open, not leased) old enough to expire and runs the
   * store's expiry (the local store's `expireIngests`, the metadata store's collector). Without it the suite
   * skips the expiry test.
   */
  expireAbandonedIngests?(): Promise<void>;
}

export type ContentSuiteFactory = () => Promise<ContentSuiteFixture>;

export interface ContentSuiteOptions {
  /** The Ctx the suite passes (default namespace "testsuite"). */
  readonly ctx?: Ctx;
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error("expected the call to fail");
}

/** Errors as `isX` predicates see them, for readable assertion failures. */
function kindCheck(pred: (err: unknown) => boolean) {
  return async (p: Promise<unknown>): Promise<void> => {
    const err = await rejection(p);
    if (!pred(err)) throw new Error(`unexpected error kind: ${String((err as Error)?.message ?? err)}`);
  };
}

const expectNotFound = kindCheck(isNotFound);
const expectAlreadyExists = kindCheck(isAlreadyExists);
const expectFailedPrecondition = kindCheck(isFailedPrecondition);
const expectInvalidArgument = kindCheck(isInvalidArgument);
const expectUnavailable = kindCheck(isUnavailable);

async function collect(source: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const chunks: Uint8Array[] = [];
  for await (const c of source) chunks.push(c);
  return Buffer.concat(chunks);
}

/**
 * The content store conformance suite (containerd's content testsuite, restated): run it against every
 * ContentStore implementation and through the gRPC client. `factory` gives a fresh, empty store per test.
 */
export function contentSuite(name: string, factory: ContentSuiteFactory, options: ContentSuiteOptions = {}): void {
  const ctx: Ctx = options.ctx ?? { namespace: "testsuite" };

  describe(`content store conformance: ${name}`, () => {
    let fixture: ContentSuiteFixture;
    let store: ContentStore;

    beforeEach(async () => {
      fixture = await factory();
      store = fixture.store;
    });
    afterEach(async () => {
      await fixture.cleanup();
    });

    async function ingest(ref: string, data: Uint8Array, labels?: Record<string, string>): Promise<string> {
      const digest = digestOf(data);
      const w = await store.writer(ctx, { ref, desc: { size: data.byteLength, digest } });
      try {
        await w.write(data);
        await w.commit(data.byteLength, digest, labels === undefined ? undefined : { labels });
      } finally {
        await w.close();
      }
      return digest;
    }

    async function readAll(digest: string): Promise<Buffer> {
      const ra = await store.readerAt(ctx, { digest });
      try {
        return await collect(ra.stream());
      } finally {
        await ra.close();
      }
    }

    async function digests(filters?: string[]): Promise<string[]> {
      const out: string[] = [];
      await store.walk(ctx, (info) => void out.push(info.digest), filters);
      return out;
    }

    it("writes, commits and reads back a blob", async () => {
      const data = randomBytes(3 * 1024 * 1024 + 17);
      const digest = digestOf(data);
      const w = await store.writer(ctx, { ref: "write-1", desc: { size: data.byteLength, digest } });
      expect(w.ref).toBe("write-1");
      expect(await w.write(data.subarray(0, 1000))).toBe(1000);
      expect(await w.write(data.subarray(1000))).toBe(data.byteLength);
      expect(w.digest()).toBe(digest);
      const st = await w.status();
      expect(st.offset).toBe(data.byteLength);
      expect(st.ref).toBe("write-1");
      await w.commit(data.byteLength, digest);
      await w.close();

      const info = await store.info(ctx, digest);
      expect(info.digest).toBe(digest);
      expect(info.size).toBe(data.byteLength);
      expect(info.createdAt).toBeInstanceOf(Date);
      expect(Math.abs(info.createdAt.getTime() - Date.now())).toBeLessThan(60_000);
      expect((await readAll(digest)).equals(data)).toBe(true);
      // The ingest is gone once committed.
      await expectNotFound(store.status(ctx, "write-1"));
      expect(await store.listStatuses(ctx)).toEqual([]);
    });

    it("commits an empty blob and one without expectations", async () => {
      const empty = new Uint8Array(0);
      const w = await store.writer(ctx, { ref: "empty" });
      await w.commit(0, digestOf(empty));
      expect((await store.info(ctx, digestOf(empty))).size).toBe(0);

      const data = Buffer.from("no expectations");
      const w2 = await store.writer(ctx, { ref: "free" });
      await w2.write(data);
      await w2.commit(0, undefined);
      expect((await readAll(digestOf(data))).toString()).toBe("no expectations");
    });

    it("keeps commit labels", async () => {
      const digest = await ingest("labelled", Buffer.from("labelled blob"), { "containerd.io/gc.root": "x" });
      expect((await store.info(ctx, digest)).labels).toEqual({ "containerd.io/gc.root": "x" });
    });

    it("resumes an ingest after close at its offset", async () => {
      const data = Buffer.from("hello resumable world");
      const digest = digestOf(data);
      const w1 = await store.writer(ctx, { ref: "resume", desc: { size: data.byteLength, digest } });
      await w1.write(data.subarray(0, 6));
      await w1.close();

      const st = await store.status(ctx, "resume");
      expect(st.offset).toBe(6);
      expect(st.total).toBe(data.byteLength);

      const w2 = await store.writer(ctx, { ref: "resume", desc: { size: data.byteLength, digest } });
      const st2 = await w2.status();
      expect(st2.offset).toBe(6);
      expect(w2.digest()).toBe(digestOf(data.subarray(0, 6)));
      await w2.write(data.subarray(6));
      await w2.commit(data.byteLength, digest);
      expect((await readAll(digest)).equals(data)).toBe(true);
    });

    it("restarts an ingest with truncate(0)", async () => {
      const data = Buffer.from("the real content");
      const w = await store.writer(ctx, { ref: "trunc" });
      await w.write(Buffer.from("garbage garbage garbage"));
      await w.truncate(0);
      expect((await w.status()).offset).toBe(0);
      expect(w.digest()).toBe(digestOf(new Uint8Array(0)));
      await w.write(data);
      expect(w.digest()).toBe(digestOf(data));
      await w.commit(data.byteLength, digestOf(data));
      expect((await readAll(digestOf(data))).equals(data)).toBe(true);
    });

    it("rejects a wrong digest with FailedPrecondition and commits nothing", async () => {
      const data = Buffer.from("some bytes");
      const wrong = digestOf("other bytes");
      const w = await store.writer(ctx, { ref: "wrong-digest" });
      await w.write(data);
      await expectFailedPrecondition(w.commit(data.byteLength, wrong));
      await w.close();
      await expectNotFound(store.info(ctx, wrong));
      await expectNotFound(store.info(ctx, digestOf(data)));
      expect(await digests()).toEqual([]);
      // The ingest stays, resumable.
      expect((await store.status(ctx, "wrong-digest")).offset).toBe(data.byteLength);
    });

    it("rejects a wrong size with FailedPrecondition", async () => {
      const data = Buffer.from("sized bytes");
      const w = await store.writer(ctx, { ref: "wrong-size" });
      await w.write(data);
      await expectFailedPrecondition(w.commit(data.byteLength + 1, digestOf(data)));
      await w.close();
      await expectNotFound(store.info(ctx, digestOf(data)));
      expect(await digests()).toEqual([]);
    });

    it("answers AlreadyExists for a committed digest, at open and at commit", async () => {
      const data = Buffer.from("exists already");
      const digest = await ingest("first", data);
      await expectAlreadyExists(store.writer(ctx, { ref: "second", desc: { size: data.byteLength, digest } }));

      // Without the expectation at open, the commit finds it: the ingest is removed, the blob intact.
      const w = await store.writer(ctx, { ref: "third" });
      await w.write(data);
      await expectAlreadyExists(w.commit(data.byteLength, digest));
      await w.close();
      await expectNotFound(store.status(ctx, "third"));
      expect((await readAll(digest)).equals(data)).toBe(true);
      expect(await digests()).toEqual([digest]);
    });

    it("keeps an ingest consistent across commit errors and reopens", async () => {
      const c1 = randomBytes(256);
      const d1 = await ingest("commit-state-seed", c1);
      const ref = "commit-state";

      // AlreadyExists with the digest given: the ingest is gone, the ref free, the blob intact.
      let w = await store.writer(ctx, { ref });
      await w.write(c1);
      await expectUnavailable(store.writer(ctx, { ref }));
      await expectAlreadyExists(w.commit(c1.byteLength, d1));
      await w.close();
      // And without the digest (the store computes it).
      w = await store.writer(ctx, { ref });
      expect((await w.status()).offset).toBe(0);
      await w.write(c1);
      await expectAlreadyExists(w.commit(c1.byteLength, undefined));
      await w.close();
      await expectNotFound(store.status(ctx, ref));

      // A wrong digest, then a wrong size: FailedPrecondition each time, and the data survives a reopen.
      const more = Buffer.concat([c1, Buffer.from("more")]);
      w = await store.writer(ctx, { ref });
      await w.write(more);
      await expectFailedPrecondition(w.commit(more.byteLength, digestOf(randomBytes(8))));
      await w.close();
      w = await store.writer(ctx, { ref });
      expect((await w.status()).offset).toBe(more.byteLength);
      await expectFailedPrecondition(w.commit(c1.byteLength, undefined));
      await w.close();
      w = await store.writer(ctx, { ref });
      await expectUnavailable(store.writer(ctx, { ref }));
      await w.commit(more.byteLength, undefined);
      await w.close();
      expect((await readAll(digestOf(more))).equals(more)).toBe(true);

      // A committed ref is free again and starts empty.
      w = await store.writer(ctx, { ref });
      expect((await w.status()).offset).toBe(0);
      await w.close();
      expect((await readAll(d1)).equals(c1)).toBe(true);
      expect(await digests()).toEqual([d1, digestOf(more)].sort());
    });

    it("refuses to resume an ingest with a different total", async () => {
      const w = await store.writer(ctx, { ref: "total", desc: { size: 10 } });
      await w.write(Buffer.from("12345"));
      await w.close();
      await expectFailedPrecondition(store.writer(ctx, { ref: "total", desc: { size: 11 } }));
      // Nothing was lost and the ref is not left locked.
      const again = await store.writer(ctx, { ref: "total", desc: { size: 10 } });
      expect(await again.status()).toMatchObject({ offset: 5, total: 10 });
      await again.close();
    });

    it("expires abandoned ingests", async (t) => {
      if (fixture.expireAbandonedIngests === undefined) {
        t.skip();
        return;
      }
      const old = await store.writer(ctx, { ref: "abandoned" });
      await old.write(Buffer.from("stale"));
      await old.close();
      // A root label keeps the blob from a collecting store's garbage collector.
      const kept = await ingest("kept", Buffer.from("committed blobs do not expire"), { "containerd.io/gc.root": "x" });
      await fixture.expireAbandonedIngests();
      await expectNotFound(store.status(ctx, "abandoned"));
      expect((await store.listStatuses(ctx)).map((s) => s.ref)).not.toContain("abandoned");
      expect((await readAll(kept)).toString()).toBe("committed blobs do not expire");
      const fresh = await store.writer(ctx, { ref: "abandoned" });
      expect((await fresh.status()).offset).toBe(0);
      await fresh.close();
    });

    it("locks a ref: a second writer gets Unavailable until the first closes", async () => {
      const w1 = await store.writer(ctx, { ref: "locked" });
      await expectUnavailable(store.writer(ctx, { ref: "locked" }));
      await w1.write(Buffer.from("abc"));
      await w1.close();
      const w2 = await store.writer(ctx, { ref: "locked" });
      expect((await w2.status()).offset).toBe(3);
      await w2.close();
    });

    it("reports statuses, filters them and aborts ingests", async () => {
      const a = await store.writer(ctx, { ref: "ingest-a", desc: { size: 10 } });
      await a.write(Buffer.from("12345"));
      const b = await store.writer(ctx, { ref: "ingest-b" });
      await b.write(Buffer.from("1"));
      await b.close();

      const sa = await store.status(ctx, "ingest-a");
      expect(sa).toMatchObject({ ref: "ingest-a", offset: 5, total: 10 });
      expect(sa.startedAt).toBeInstanceOf(Date);
      expect(sa.updatedAt.getTime()).toBeGreaterThanOrEqual(sa.startedAt.getTime());

      const all = await store.listStatuses(ctx);
      expect(all.map((s) => s.ref)).toEqual(["ingest-a", "ingest-b"]);
      expect((await store.listStatuses(ctx, [""])).length).toBe(2);
      expect((await store.listStatuses(ctx, ["ref==ingest-b"])).map((s) => s.ref)).toEqual(["ingest-b"]);
      expect((await store.listStatuses(ctx, ["ref~=-a$"])).map((s) => s.ref)).toEqual(["ingest-a"]);
      expect(await store.listStatuses(ctx, ["ref==nope"])).toEqual([]);
      await expectInvalidArgument(store.listStatuses(ctx, ["(("]));

      await a.close();
      await store.abort(ctx, "ingest-a");
      await expectNotFound(store.status(ctx, "ingest-a"));
      await expectNotFound(store.abort(ctx, "ingest-a"));
      await expectNotFound(store.status(ctx, "never"));
      expect((await store.listStatuses(ctx)).map((s) => s.ref)).toEqual(["ingest-b"]);

      // An aborted ref starts from 0.
      const again = await store.writer(ctx, { ref: "ingest-a" });
      expect((await again.status()).offset).toBe(0);
      await again.close();
    });

    it("gets info, updates labels by field path, walks with filters and deletes", async () => {
      const d1 = await ingest("blob-1", Buffer.from("blob one"), { a: "1", keep: "yes" });
      const d2 = await ingest("blob-2", Buffer.from("blob two"), { a: "2" });
      const d3 = await ingest("blob-3", Buffer.from("blob three"));

      expect(await digests()).toEqual([d1, d2, d3].sort());
      expect(await digests(["labels.a==1"])).toEqual([d1]);
      expect(await digests(["labels.a"])).toEqual([d1, d2].sort());
      expect(await digests(["labels.a==1", "labels.a==2"])).toEqual([d1, d2].sort());
      expect(await digests([`digest==${d3}`])).toEqual([d3]);
      expect(await digests(["labels.a==1,labels.keep==no"])).toEqual([]);
      await expectInvalidArgument(digests(["(("]));

      let info: Info = await store.update(ctx, { digest: d1, labels: { a: "changed", b: "new" } }, ["labels.a"]);
      expect(info.labels).toEqual({ a: "changed", keep: "yes" });
      info = await store.update(ctx, { digest: d1, labels: { b: "new" } }, ["labels.b", "labels.keep"]);
      expect(info.labels).toEqual({ a: "changed", b: "new" });
      info = await store.update(ctx, { digest: d1, labels: { only: "this" } }, ["labels"]);
      expect(info.labels).toEqual({ only: "this" });
      info = await store.update(ctx, { digest: d1, labels: { all: "replaced" } });
      expect(info.labels).toEqual({ all: "replaced" });
      expect((await store.info(ctx, d1)).labels).toEqual({ all: "replaced" });
      expect(info.size).toBe(8);
      await expectInvalidArgument(store.update(ctx, { digest: d1, labels: {} }, ["size"]));
      await expectNotFound(store.update(ctx, { digest: digestOf("missing"), labels: { a: "b" } }));

      await store.delete(ctx, d2);
      await expectNotFound(store.info(ctx, d2));
      await expectNotFound(store.readerAt(ctx, { digest: d2 }));
      await expectNotFound(store.delete(ctx, d2));
      expect(await digests()).toEqual([d1, d3].sort());
    });

    it("reads ranges; reads at or past the end are short or empty", async () => {
      const data = randomBytes(2 * 1024 * 1024 + 5);
      const digest = await ingest("ranges", data);
      const ra = await store.readerAt(ctx, { digest });
      try {
        expect(ra.size).toBe(data.byteLength);
        expect(Buffer.from(await ra.readAt(0, 10)).equals(data.subarray(0, 10))).toBe(true);
        expect(Buffer.from(await ra.readAt(1_500_000, 1_000_000)).equals(data.subarray(1_500_000, 2_500_000))).toBe(
          true,
        );
        expect(Buffer.from(await ra.readAt(data.byteLength - 2, 10)).equals(data.subarray(-2))).toBe(true);
        expect((await ra.readAt(data.byteLength, 10)).byteLength).toBe(0);
        expect((await ra.readAt(data.byteLength + 100, 10)).byteLength).toBe(0);
        expect((await ra.readAt(5, 0)).byteLength).toBe(0);
        expect((await collect(ra.stream(100, 1000))).equals(data.subarray(100, 1100))).toBe(true);
        expect((await collect(ra.stream(data.byteLength - 3))).equals(data.subarray(-3))).toBe(true);
        expect((await collect(ra.stream(data.byteLength + 1))).byteLength).toBe(0);
        const [x, y] = await Promise.all([ra.readAt(0, 4), ra.readAt(4, 4)]);
        expect(Buffer.concat([x, y]).equals(data.subarray(0, 8))).toBe(true);
        await expectInvalidArgument(ra.readAt(-1, 4));
      } finally {
        await ra.close();
      }
    });

    it("rejects malformed digests with InvalidArgument", async () => {
      for (const bad of ["nope", "sha256:xyz", "sha256:ABCDEF", "md5:abc"]) {
        await expectInvalidArgument(store.info(ctx, bad));
        await expectInvalidArgument(store.readerAt(ctx, { digest: bad }));
        await expectInvalidArgument(store.delete(ctx, bad));
        await expectInvalidArgument(store.update(ctx, { digest: bad, labels: {} }));
      }
      await expectInvalidArgument(store.writer(ctx, { ref: "bad-digest", desc: { digest: "sha256:nothex" } }));
      await expectInvalidArgument(store.writer(ctx, { ref: "" }));
      // The failed open left no lock behind.
      const w = await store.writer(ctx, { ref: "bad-digest" });
      await w.close();
    });

    it("runs concurrent writers on different refs", async () => {
      const blobs = Array.from({ length: 8 }, (_, i) => randomBytes(256 * 1024 + i));
      const written = await Promise.all(
        blobs.map(async (data, i) => {
          const digest = digestOf(data);
          const w = await store.writer(ctx, { ref: `concurrent-${i}`, desc: { size: data.byteLength, digest } });
          for (let off = 0; off < data.byteLength; off += 64 * 1024) {
            await w.write(data.subarray(off, off + 64 * 1024));
          }
          await w.commit(data.byteLength, digest);
          return digest;
        }),
      );
      expect(await digests()).toEqual([...written].sort());
      for (const [i, data] of blobs.entries()) expect((await readAll(written[i]!)).equals(data)).toBe(true);
      expect(await store.listStatuses(ctx)).toEqual([]);
    });
  });
}

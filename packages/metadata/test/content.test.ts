import { isAlreadyExists, isFailedPrecondition, isInvalidArgument, isNotFound } from "@berth/errdefs";
import { digestOf } from "@berth/oci-spec";
import { afterEach, describe, expect, it } from "vitest";
import { type Fixture, catchErr, fixture, put, readAll } from "./helpers.js";

let f: Fixture;
afterEach(async () => {
  await f?.dispose();
});

const list = async (f: Fixture, namespace: string, filters?: string[]) => {
  const out: string[] = [];
  await f.cs.walk({ namespace }, (info) => void out.push(info.digest), filters);
  return out;
};

describe("namespaced content", () => {
  it("shows a namespace only its own blobs, with its own labels", async () => {
    f = await fixture();
    const a = await put(f.cs, "ns1", "hello", { labels: { x: "1" } });
    const b = await put(f.cs, "ns2", "world");
    expect(await list(f, "ns1")).toEqual([a]);
    expect(await list(f, "ns2")).toEqual([b]);
    expect(isNotFound(await catchErr(() => f.cs.info({ namespace: "ns2" }, a)))).toBe(true);
    expect(isNotFound(await catchErr(() => f.cs.readerAt({ namespace: "ns2" }, { digest: a })))).toBe(true);
    expect(await readAll(f.cs, "ns1", a)).toBe("hello");
    const info = await f.cs.info({ namespace: "ns1" }, a);
    expect(info).toMatchObject({ digest: a, size: 5, labels: { x: "1" } });
    expect(f.db.namespaces.list()).toEqual(["ns1", "ns2"]);

    // Labels per namespace: the same blob linked in ns2 has none of ns1's labels.
    await put(f.cs, "ns2", "hello", { labels: { y: "2" } });
    expect((await f.cs.info({ namespace: "ns2" }, a)).labels).toEqual({ y: "2" });
    expect((await f.cs.info({ namespace: "ns1" }, a)).labels).toEqual({ x: "1" });

    await f.cs.update({ namespace: "ns1" }, { digest: a, labels: { z: "3" } }, ["labels.z", "labels.x"]);
    expect((await f.cs.info({ namespace: "ns1" }, a)).labels).toEqual({ z: "3" });
    await f.cs.update({ namespace: "ns1" }, { digest: a, labels: { w: "4" } });
    expect((await f.cs.info({ namespace: "ns1" }, a)).labels).toEqual({ w: "4" });
    expect(
      isInvalidArgument(await catchErr(() => f.cs.update({ namespace: "ns1" }, { digest: a, labels: {} }, ["size"]))),
    ).toBe(true);
    expect(await list(f, "ns1", ["labels.w==4"])).toEqual([a]);
    expect(await list(f, "ns1", ["labels.w==5"])).toEqual([]);
    expect(isInvalidArgument(await catchErr(() => f.cs.info({ namespace: "ns1" }, "sha256:nope")))).toBe(true);
  });

  it("links a blob another namespace has through a virtual writer", async () => {
    f = await fixture();
    const data = Buffer.from("shared bytes");
    const digest = await put(f.cs, "ns1", data.toString());
    const w = await f.cs.writer({ namespace: "ns2" }, { ref: "r1", desc: { digest, size: data.length } });
    const st = await w.status();
    expect(st).toMatchObject({ ref: "r1", offset: data.length, total: data.length, expected: digest });
    const listed = await f.cs.listStatuses({ namespace: "ns2" });
    expect(listed.map((s) => [s.ref, s.offset])).toEqual([["r1", data.length]]);
    await w.commit(data.length, digest);
    await w.close();
    expect(await readAll(f.cs, "ns2", digest)).toBe("shared bytes");
    expect(await f.cs.listStatuses({ namespace: "ns2" })).toEqual([]);

    // Already in this namespace: AlreadyExists at open.
    const err = await catchErr(() =>
      f.cs.writer({ namespace: "ns2" }, { ref: "r2", desc: { digest, size: data.length } }),
    );
    expect(isAlreadyExists(err)).toBe(true);

    // A size mismatch is not linked: the writer is real and starts at 0.
    const w3 = await f.cs.writer({ namespace: "ns3" }, { ref: "r3", desc: { digest, size: 3 } });
    expect((await w3.status()).offset).toBe(0);
    await w3.close();
  });

  it("namespaces ingests: backend refs are prefixed, statuses report client refs", async () => {
    f = await fixture();
    const w = await f.cs.writer({ namespace: "ns1" }, { ref: "same" });
    await w.write(Buffer.from("abc"));
    const w2 = await f.cs.writer({ namespace: "ns2" }, { ref: "same" });
    await w2.write(Buffer.from("de"));
    expect(await f.cs.status({ namespace: "ns1" }, "same")).toMatchObject({ ref: "same", offset: 3 });
    expect(await f.cs.status({ namespace: "ns2" }, "same")).toMatchObject({ ref: "same", offset: 2 });
    const backendRefs = (await f.db.contentBackend!.listStatuses({ namespace: "x" })).map((s) => s.ref).sort();
    expect(backendRefs).toHaveLength(2);
    expect(backendRefs[0]).toMatch(/^ns1\/\d+\/same$/);
    expect(backendRefs[1]).toMatch(/^ns2\/\d+\/same$/);
    await w.close();
    // Resume from the stored offset.
    const again = await f.cs.writer({ namespace: "ns1" }, { ref: "same" });
    expect((await again.status()).offset).toBe(3);
    await again.close();
    await f.cs.abort({ namespace: "ns1" }, "same");
    expect(isNotFound(await catchErr(() => f.cs.status({ namespace: "ns1" }, "same")))).toBe(true);
    expect(isNotFound(await catchErr(() => f.cs.abort({ namespace: "ns1" }, "same")))).toBe(true);
    expect((await f.db.contentBackend!.listStatuses({ namespace: "x" })).length).toBe(1);
    await w2.close();
  });

  it("rejects a wrong expected digest and commits nothing", async () => {
    f = await fixture();
    const w = await f.cs.writer({ namespace: "ns1" }, { ref: "bad" });
    await w.write(Buffer.from("data"));
    const err = await catchErr(() => w.commit(4, digestOf("other")));
    expect(isFailedPrecondition(err)).toBe(true);
    await w.close();
    expect(await list(f, "ns1")).toEqual([]);
  });

  it("deletes the namespace's record only, and keeps the namespace while it has content", async () => {
    f = await fixture();
    const d = await put(f.cs, "ns1", "x");
    await put(f.cs, "ns2", "x");
    const err = await catchErr(() => f.db.namespaces.delete("ns1"));
    expect(isFailedPrecondition(err)).toBe(true);
    expect((err as Error).message).toContain('namespace "ns1" must be empty, but it still has content');
    await f.cs.delete({ namespace: "ns1" }, d);
    expect(isNotFound(await catchErr(() => f.cs.delete({ namespace: "ns1" }, d)))).toBe(true);
    expect(await readAll(f.cs, "ns2", d)).toBe("x");
    expect(f.onDisk(d)).toBe(true);
    f.db.namespaces.delete("ns1");
    expect(f.db.namespaces.list()).toEqual(["ns2"]);
  });

  it("adds blobs and ingests made under a lease to it; unknown leases are NotFound", async () => {
    f = await fixture();
    const err = await catchErr(() => put(f.cs, "ns1", "a", { lease: "nope" }));
    expect(isNotFound(err)).toBe(true);
    expect((err as Error).message).toContain("lease does not exist");
    f.db.leases.create("ns1", { id: "l1" });
    const d = await put(f.cs, "ns1", "a", { lease: "l1" });
    const w = await f.cs.writer({ namespace: "ns1", lease: "l1" }, { ref: "pending" });
    await w.close();
    expect(f.db.leases.listResources("ns1", "l1")).toEqual([
      { type: "content", id: d },
      { type: "ingests", id: "pending" },
    ]);
    // An existing blob opened with its digest under another lease joins that lease too.
    f.db.leases.create("ns1", { id: "l2" });
    const again = await catchErr(() =>
      f.cs.writer({ namespace: "ns1", lease: "l2" }, { ref: "x", desc: { digest: d, size: 1 } }),
    );
    expect(isAlreadyExists(again)).toBe(true);
    expect(f.db.leases.listResources("ns1", "l2")).toEqual([{ type: "content", id: d }]);
  });
});

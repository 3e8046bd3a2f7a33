import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLocalStore } from "@berth/content-store/local";
import { isAlreadyExists, isFailedPrecondition, isInvalidArgument, isNotFound } from "@berth/errdefs";
import { type Info, Kind, type Snapshotter } from "@berth/snapshotter";
import { createNativeSnapshotter } from "@berth/snapshotter/native";
import { snapshotterSuite } from "@berth/snapshotter/testsuite";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { GarbageCollector, type MetadataDb, openMetadataDb } from "../src/index.js";
import { catchErr, put } from "./helpers.js";

interface Fixture {
  readonly db: MetadataDb;
  readonly backend: Snapshotter;
  readonly sn: Snapshotter;
  readonly dir: string;
  collect(): Promise<void>;
  backendInfos(): Promise<Info[]>;
  dispose(): Promise<void>;
}

async function fixture(): Promise<Fixture> {
  const dir = await mkdtemp(join(tmpdir(), "berth-metadata-snapshots-"));
  const backend = createNativeSnapshotter({ root: join(dir, "native") });
  const db = openMetadataDb(join(dir, "meta"));
  const sn = db.attachSnapshotter("native", backend);
  const gc = new GarbageCollector(db);
  return {
    db,
    backend,
    sn,
    dir,
    async collect() {
      await gc.collect();
    },
    async backendInfos() {
      const out: Info[] = [];
      await backend.walk({ namespace: "any" }, (i) => {
        out.push(i);
      });
      return out;
    },
    async dispose() {
      await backend.close();
      db.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

// The namespaced snapshotter must behave as a snapshotter: containerd runs its suite through the metadata layer.
snapshotterSuite("metadata over native", async () => {
  const f = await fixture();
  return { snapshotter: f.sn, cleanup: () => f.dispose() };
});

describe("namespaced snapshotter", () => {
  let f: Fixture;
  const ns1 = { namespace: "ns1" };
  const ns2 = { namespace: "ns2" };
  beforeEach(async () => {
    f = await fixture();
  });
  afterEach(async () => {
    await f.dispose();
  });

  it("maps keys to <namespace>/<seq>/<key> in the backend and translates parents both ways", async () => {
    await f.sn.prepare(ns1, "k1", "");
    await f.sn.commit(ns1, "c1", "k1");
    await f.sn.prepare(ns1, "k2", "c1");
    const backend = (await f.backendInfos()).map((i) => [i.name, i.parent, i.kind]);
    expect(backend).toEqual([
      ["ns1/2/c1", "", Kind.Committed],
      ["ns1/3/k2", "ns1/2/c1", Kind.Active],
    ]);
    expect(await f.sn.stat(ns1, "k2")).toMatchObject({ name: "k2", parent: "c1", kind: Kind.Active });
    const walked: string[] = [];
    await f.sn.walk(ns1, (i) => {
      walked.push(`${i.name}<${i.parent}:${i.kind}`);
    });
    expect(walked).toEqual(["c1<:committed", "k2<c1:active"]);
  });

  it("keeps a key space per namespace", async () => {
    await f.sn.prepare(ns1, "k", "");
    await f.sn.commit(ns1, "c", "k");
    expect(isAlreadyExists(await catchErr(() => f.sn.prepare(ns1, "c", "")))).toBe(true);
    expect(isAlreadyExists(await catchErr(() => f.sn.commit(ns1, "c", "c")))).toBe(true);
    // the same names elsewhere are other snapshots; another namespace's snapshot is no parent
    await f.sn.prepare(ns2, "c", "");
    const err = await catchErr(() => f.sn.prepare(ns2, "child", "c"));
    expect(isInvalidArgument(err)).toBe(true); // ns2's "c" is active, not ns1's committed one
    const missing = await catchErr(() => f.sn.prepare(ns2, "child", "nope"));
    expect(isNotFound(missing)).toBe(true);
    expect((missing as Error).message).toContain("parent snapshot nope does not exist");
    expect(isNotFound(await catchErr(() => f.sn.stat(ns2, "k")))).toBe(true);
    const names = async (ctx: { namespace: string }) => {
      const out: string[] = [];
      await f.sn.walk(ctx, (i) => {
        out.push(i.name);
      });
      return out;
    };
    expect(await names(ns1)).toEqual(["c"]);
    expect(await names(ns2)).toEqual(["c"]);
    expect(isFailedPrecondition(await catchErr(() => f.sn.stat({ namespace: "" }, "c")))).toBe(true);
  });

  it("passes only containerd.io/snapshot/ labels (and snapshot.ref) to the backend, keeps all", async () => {
    const labels = {
      "containerd.io/snapshot/x": "1",
      "containerd.io/snapshot.ref": "ref",
      "containerd.io/gc.root": "now",
      mine: "yes",
    };
    await f.sn.prepare(ns1, "k", "", { labels });
    expect((await f.sn.stat(ns1, "k")).labels).toEqual(labels);
    const [b] = await f.backendInfos();
    expect(b?.labels).toEqual({ "containerd.io/snapshot/x": "1", "containerd.io/snapshot.ref": "ref" });

    // updates: by field path, an empty value removes; inherited ones reach the backend
    const info = await f.sn.update(
      ns1,
      { name: "k", labels: { mine: "", "containerd.io/snapshot/y": "2", other: "o" } },
      ["labels.mine", "labels.containerd.io/snapshot/y", "labels.other"],
    );
    expect(info.labels).toEqual({ ...labels, mine: undefined, "containerd.io/snapshot/y": "2", other: "o" });
    expect(Object.hasOwn(info.labels, "mine")).toBe(false);
    const [b2] = await f.backendInfos();
    expect(b2?.labels).toEqual({
      "containerd.io/snapshot/x": "1",
      "containerd.io/snapshot.ref": "ref",
      "containerd.io/snapshot/y": "2",
    });
    expect(isInvalidArgument(await catchErr(() => f.sn.update(ns1, { name: "k" }, ["parent"])))).toBe(true);
    expect(isNotFound(await catchErr(() => f.sn.update(ns1, { name: "nope", labels: {} })))).toBe(true);
    // commit labels are the committed snapshot's
    await f.sn.commit(ns1, "c", "k", { labels: { a: "b" } });
    expect((await f.sn.stat(ns1, "c")).labels).toEqual({ a: "b" });
    const filtered: string[] = [];
    await f.sn.walk(ns1, (i) => void filtered.push(i.name), ["labels.a==b"]);
    expect(filtered).toEqual(["c"]);
  });

  it("removes records only; a parent with children fails with FailedPrecondition", async () => {
    await f.sn.prepare(ns1, "k", "");
    await f.sn.commit(ns1, "c", "k");
    await f.sn.prepare(ns1, "k2", "c");
    const err = await catchErr(() => f.sn.remove(ns1, "c"));
    expect(isFailedPrecondition(err)).toBe(true);
    expect((err as Error).message).toContain("cannot remove snapshot with child");
    await f.sn.remove(ns1, "k2");
    await f.sn.remove(ns1, "c");
    expect(isNotFound(await catchErr(() => f.sn.remove(ns1, "c")))).toBe(true);
    // the backend keeps them until a collection
    expect((await f.backendInfos()).length).toBe(2);
    await f.collect();
    expect(await f.backendInfos()).toEqual([]);
  });

  it("rolls back the record when the backend refuses", async () => {
    await f.sn.view(ns1, "v", "");
    // a view cannot be committed: the reserved name must not stay
    expect(isFailedPrecondition(await catchErr(() => f.sn.commit(ns1, "c", "v")))).toBe(true);
    expect(isNotFound(await catchErr(() => f.sn.stat(ns1, "c")))).toBe(true);
    expect((await f.sn.stat(ns1, "v")).kind).toBe(Kind.View);
    // an active parent is refused by the backend: no record is left
    await f.sn.prepare(ns1, "a", "");
    expect(isInvalidArgument(await catchErr(() => f.sn.prepare(ns1, "b", "a")))).toBe(true);
    expect(isNotFound(await catchErr(() => f.sn.stat(ns1, "b")))).toBe(true);
  });

  it("adds snapshots made in a call with a lease to the lease", async () => {
    f.db.leases.create("ns1", { id: "l" });
    const leased = { namespace: "ns1", lease: "l" };
    await f.sn.prepare(leased, "k", "");
    expect(f.db.leases.listResources("ns1", "l")).toEqual([{ type: "snapshots/native", id: "k" }]);
    await f.sn.commit(leased, "c", "k");
    expect(f.db.leases.listResources("ns1", "l")).toEqual([{ type: "snapshots/native", id: "c" }]);
    const err = await catchErr(() => f.sn.prepare({ namespace: "ns1", lease: "missing" }, "x", ""));
    expect(isNotFound(err)).toBe(true);
    expect(isNotFound(await catchErr(() => f.sn.stat(ns1, "x")))).toBe(true);
  });

  it("a namespace with snapshots cannot be deleted", async () => {
    await f.sn.prepare(ns1, "k", "");
    const err = await catchErr(() => f.db.namespaces.delete("ns1"));
    expect(isFailedPrecondition(err)).toBe(true);
    expect((err as Error).message).toContain("snapshots");
    await f.sn.remove(ns1, "k");
    f.db.namespaces.delete("ns1");
  });

  it("reports the backend's usage and mounts", async () => {
    const [m] = await f.sn.prepare(ns1, "k", "");
    expect(m?.source).toBeDefined();
    await writeFile(join(m?.source ?? "", "file"), "x".repeat(10_000));
    expect((await f.sn.mounts(ns1, "k"))[0]?.source).toBe(m?.source);
    const usage = await f.sn.usage(ns1, "k");
    expect(usage.inodes).toBe(2);
    expect(usage.size).toBeGreaterThanOrEqual(10_000);
    expect(isNotFound(await catchErr(() => f.sn.usage(ns2, "k")))).toBe(true);
  });
});

describe("garbage collection of snapshots", () => {
  let f: Fixture;
  const ctx = { namespace: "ns" };
  beforeEach(async () => {
    f = await fixture();
  });
  afterEach(async () => {
    await f.dispose();
  });

  const keys = async () => {
    const out: string[] = [];
    await f.sn.walk(ctx, (i) => {
      out.push(i.name);
    });
    return out;
  };

  /** A chain c1 <- c2 <- top (active). */
  async function chain(labels: Record<string, string> = {}): Promise<void> {
    await f.sn.prepare(ctx, "k1", "");
    await f.sn.commit(ctx, "c1", "k1");
    await f.sn.prepare(ctx, "k2", "c1");
    await f.sn.commit(ctx, "c2", "k2");
    await f.sn.prepare(ctx, "top", "c2", { labels });
  }

  it("collects unreferenced snapshots, leaves first, in the records and the backend", async () => {
    await chain();
    expect((await f.backendInfos()).length).toBe(3);
    await f.collect();
    expect(await keys()).toEqual([]);
    expect(await f.backendInfos()).toEqual([]);
  });

  it("keeps a gc.root snapshot and its parents", async () => {
    await chain({ "containerd.io/gc.root": "x" });
    await f.sn.prepare(ctx, "loose", "");
    await f.collect();
    expect(await keys()).toEqual(["c1", "c2", "top"]);
    expect((await f.backendInfos()).length).toBe(3);
  });

  it("follows gc.ref.snapshot labels of content and images, and snapshots' gc.ref labels", async () => {
    await chain();
    const cs = f.db.attachContent(createLocalStore({ root: join(f.dir, "cs") }));
    // a root blob that names the top of the chain, as an unpacked image config does
    await put(cs, "ns", "config", {
      labels: { "containerd.io/gc.root": "x", "containerd.io/gc.ref.snapshot.native": "c2" },
    });
    await f.collect();
    expect(await keys()).toEqual(["c1", "c2"]);

    // an image label
    f.db.images.create("ns", {
      name: "img",
      labels: { "containerd.io/gc.ref.snapshot.native/x": "c1" },
      target: { mediaType: "application/vnd.oci.image.manifest.v1+json", digest: `sha256:${"a".repeat(64)}`, size: 1 },
    });
    await f.sn.prepare(ctx, "by-snap", "", { labels: { "containerd.io/gc.root": "x" } });
    await f.sn.commit(ctx, "held", "by-snap", {
      labels: { "containerd.io/gc.root": "x", "containerd.io/gc.ref.snapshot.native": "other" },
    });
    await f.sn.prepare(ctx, "o", "");
    await f.sn.commit(ctx, "other", "o");
    await f.sn.prepare(ctx, "gone", "");
    await f.collect();
    expect(await keys()).toEqual(["c1", "c2", "held", "other"]);
    expect((await f.backendInfos()).length).toBe(4);
  });

  it("keeps a leased snapshot until the lease goes", async () => {
    f.db.leases.create("ns", { id: "l" });
    await f.sn.prepare({ namespace: "ns", lease: "l" }, "leased", "");
    await f.sn.prepare(ctx, "unheld", "");
    await f.collect();
    expect(await keys()).toEqual(["leased"]);
    expect((await f.backendInfos()).length).toBe(1);
    f.db.leases.delete("ns", "l");
    await f.collect();
    expect(await keys()).toEqual([]);
    expect(await f.backendInfos()).toEqual([]);
  });

  it("removes backend snapshots no record names (a crash between backend and record)", async () => {
    await f.backend.prepare(ctx, "stray", "");
    // only snapshotters marked dirty are walked; a fresh attach is dirty
    await f.collect();
    expect(await f.backendInfos()).toEqual([]);
  });
});

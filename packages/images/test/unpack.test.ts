// The unpack library in-process: the native snapshotter, the walking differ (applying straight into the
// snapshot's directory) and a local content store.
import fs from "node:fs";
import path from "node:path";
import { gzipSync } from "node:zlib";
import { createWalkingDiffer } from "@berth/diff/walking";
import { isFailedPrecondition, isInvalidArgument, isNotFound } from "@berth/errdefs";
import { type Descriptor, digestOf } from "@berth/oci-spec";
import type { Snapshotter } from "@berth/snapshotter";
import { createNativeSnapshotter } from "@berth/snapshotter/native";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { chainIDs } from "../src/identity.js";
import { LabelSnapshotRef, unpackImage, withLease } from "../src/unpack/index.js";
import { type TempStore, ctx, makeTar, put, tempStore } from "./helpers.js";

const MANIFEST = "application/vnd.oci.image.manifest.v1+json";
const LAYER = "application/vnd.oci.image.layer.v1.tar+gzip";

async function image(ts: TempStore, tars: Buffer[], diffIDs = tars.map((t) => digestOf(t))): Promise<Descriptor> {
  const layers = await Promise.all(tars.map((t) => put(ts.store, gzipSync(t), LAYER)));
  const config = await put(
    ts.store,
    JSON.stringify({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: diffIDs } }),
    "application/vnd.oci.image.config.v1+json",
  );
  return put(ts.store, JSON.stringify({ schemaVersion: 2, mediaType: MANIFEST, config, layers }), MANIFEST);
}

async function allSnapshots(sn: Snapshotter) {
  const out: { name: string; kind: string; parent: string; labels: Record<string, string> }[] = [];
  await sn.walk(ctx, (i) => {
    out.push({ name: i.name, kind: i.kind, parent: i.parent, labels: i.labels });
  });
  return out.sort((a, b) => (a.name < b.name ? -1 : 1));
}

describe("unpackImage", () => {
  let ts: TempStore;
  let sn: Snapshotter & { close(): Promise<void> };
  let deps: Parameters<typeof unpackImage>[1];

  beforeEach(async () => {
    ts = await tempStore();
    sn = createNativeSnapshotter({ root: path.join(ts.dir, "native") });
    deps = { content: ts.store, snapshotter: sn, applier: createWalkingDiffer({ content: ts.store }) };
  });
  afterEach(async () => {
    await sn.close();
    await ts.cleanup();
  });

  it("applies each layer as a committed snapshot named by its chain ID, then labels blobs and config", async () => {
    const t1 = await makeTar([
      { name: "bin/", type: "directory" },
      { name: "bin/a", data: "one" },
    ]);
    const t2 = await makeTar([{ name: "bin/b", data: "two" }, { name: "bin/.wh.a" }]);
    const target = await image(ts, [t1, t2]);
    const chain = chainIDs([digestOf(t1), digestOf(t2)]);
    const events: boolean[] = [];
    const r = await unpackImage(ctx, deps, target, {
      snapshotterName: "native",
      onLayer: (e) => events.push(e.applied),
    });
    expect(r.chainID).toBe(chain[1]);
    expect(r.applied).toBe(2);
    expect(events).toEqual([true, true]);
    const snaps = await allSnapshots(sn);
    expect(snaps.map((s) => [s.name, s.kind, s.parent])).toEqual(
      [
        [chain[0], "committed", ""],
        [chain[1], "committed", chain[0]],
      ].sort((a, b) => (a[0]! < b[0]! ? -1 : 1)),
    );
    expect(snaps[0]!.labels[LabelSnapshotRef]).toMatch(/^sha256:/);
    const config = (await ts.store.info(ctx, r.config.digest)).labels;
    expect(config["containerd.io/gc.ref.snapshot.native"]).toBe(chain[1]);
    const layer = (await ts.store.info(ctx, digestOf(gzipSync(t2)))).labels;
    expect(layer["containerd.io/uncompressed"]).toBe(digestOf(t2));

    // the top snapshot's tree: b present, a whited out
    const view = await sn.view(ctx, "v", chain[1]!);
    const dir = view[0]!.source;
    expect(fs.readdirSync(path.join(dir, "bin")).sort()).toEqual(["b"]);

    // unpacking again applies nothing
    const again = await unpackImage(ctx, deps, target, { snapshotterName: "native" });
    expect(again.applied).toBe(0);
  });

  it("a diffID mismatch fails with FailedPrecondition and leaves no active or half-committed snapshot", async () => {
    const t1 = await makeTar([{ name: "a", data: "one" }]);
    const t2 = await makeTar([{ name: "b", data: "two" }]);
    const wrong = digestOf(Buffer.from("not the layer"));
    const target = await image(ts, [t1, t2], [digestOf(t1), wrong]);
    const err = await unpackImage(ctx, deps, target, { snapshotterName: "native" }).catch((e: unknown) => e);
    expect(isFailedPrecondition(err), String(err)).toBe(true);
    expect((err as Error).message).toContain("wrong diff id");
    const snaps = await allSnapshots(sn);
    expect(snaps.map((s) => [s.name, s.kind])).toEqual([[digestOf(t1), "committed"]]);
    expect(fs.readdirSync(path.join(ts.dir, "native", "snapshots")).length).toBeLessThanOrEqual(1);
  });

  it("a hostile layer fails the unpack cleanly", async () => {
    const t1 = await makeTar([{ name: "a", data: "one" }]);
    const t2 = await makeTar([{ name: "x".repeat(300), data: "long" }]);
    const target = await image(ts, [t1, t2]);
    const err = await unpackImage(ctx, deps, target, { snapshotterName: "native" }).catch((e: unknown) => e);
    expect(isInvalidArgument(err), String(err)).toBe(true);
    expect((await allSnapshots(sn)).every((s) => s.kind === "committed")).toBe(true);
  });

  it("an image whose layer blob is absent is registered but unpacking it fails clearly (NotFound naming the blob)", async () => {
    const t1 = await makeTar([{ name: "a", data: "one" }]);
    const t2 = await makeTar([{ name: "b", data: "two" }]);
    const target = await image(ts, [t1, t2]);
    const missing = digestOf(gzipSync(t2));
    await ts.store.delete(ctx, missing);
    const err = await unpackImage(ctx, deps, target, { snapshotterName: "native" }).catch((e: unknown) => e);
    expect(isNotFound(err), String(err)).toBe(true);
    expect((err as Error).message).toContain(missing);
    // the first layer may stay committed (as in containerd); nothing active or half-committed remains
    const snaps = await allSnapshots(sn);
    expect(snaps.every((s) => s.kind === "committed")).toBe(true);
    expect(snaps.map((s) => s.name)).not.toContain(chainIDs([digestOf(t1), digestOf(t2)])[1]);
  });

  it("rejects configs whose diffIDs do not match the manifest's layers", async () => {
    const t1 = await makeTar([{ name: "a", data: "one" }]);
    const target = await image(ts, [t1], [digestOf(t1), digestOf(t1)]);
    const err = await unpackImage(ctx, deps, target, { snapshotterName: "native" }).catch((e: unknown) => e);
    expect(isInvalidArgument(err)).toBe(true);
    expect((err as Error).message).toMatch(/mismatched image rootfs and manifest layers/);
  });

  it("holds a temporary lease when the Ctx has none, and deletes it afterwards", async () => {
    const calls: string[] = [];
    const leases = {
      async create(_c: unknown, o: { labels: Record<string, string> }) {
        calls.push(`create ${Object.keys(o.labels).join(",")}`);
        return { id: "tmp-lease" };
      },
      async delete(_c: unknown, id: string) {
        calls.push(`delete ${id}`);
      },
    };
    const seen = await withLease(ctx, leases, async (c) => c.lease);
    expect(seen).toBe("tmp-lease");
    expect(calls).toEqual(["create containerd.io/gc.expire", "delete tmp-lease"]);
    expect(await withLease({ ...ctx, lease: "mine" }, leases, async (c) => c.lease)).toBe("mine");
    expect(calls).toHaveLength(2);
  });
});

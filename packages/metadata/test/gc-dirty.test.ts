import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { digestOf } from "@berth/oci-spec";
import { afterEach, describe, expect, it } from "vitest";
import { GarbageCollector } from "../src/index.js";
import { type Fixture, fixture, put } from "./helpers.js";

/** A blob file that no record names, put straight into the backend (what a crash mid-commit leaves). */
function orphan(f: Fixture, data: string): string {
  const digest = digestOf(Buffer.from(data));
  const dir = join(f.root, "blobs", "sha256");
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, digest.slice("sha256:".length)), data);
  return digest;
}

describe("content backend sweeps (containerd's dirtyCS)", () => {
  let f: Fixture;
  afterEach(() => f?.dispose());

  it("sweeps the backend on the first collection after start, then only after content records went", async () => {
    f = await fixture();
    const gc = new GarbageCollector(f.db);
    const kept = await put(f.cs, "ns", "kept", { labels: { "containerd.io/gc.root": "x" } });
    const early = orphan(f, "left by a crash");
    expect((await gc.collect()).blobsDeleted).toBe(1); // start-up: the backend may hold leftovers
    expect(f.onDisk(early)).toBe(false);

    // Nothing was removed since: the next collection does not walk the blobs on disk.
    const late = orphan(f, "appeared later");
    expect((await gc.collect()).blobsDeleted).toBe(0);
    expect(f.onDisk(late)).toBe(true);

    // Removing a record makes the backend dirty: that sweep takes the unreferenced blobs.
    await f.cs.delete({ namespace: "ns" }, kept);
    const stats = await gc.collect();
    expect(stats.blobsDeleted).toBe(2);
    expect(f.onDisk(kept)).toBe(false);
    expect(f.onDisk(late)).toBe(false);
  });

  it("a record removed by the sweep itself (an expired lease) also triggers the backend sweep", async () => {
    f = await fixture();
    const gc = new GarbageCollector(f.db);
    await gc.collect();
    await f.db.leases.create("ns", { id: "l1" });
    const leased = await put(f.cs, "ns", "leased", { lease: "l1" });
    expect((await gc.collect()).blobsDeleted).toBe(0);
    expect(f.onDisk(leased)).toBe(true);
    await f.db.leases.delete("ns", "l1");
    const stats = await gc.collect();
    expect(stats.removed.content).toBe(1);
    expect(stats.blobsDeleted).toBe(1);
    expect(f.onDisk(leased)).toBe(false);
  });
});

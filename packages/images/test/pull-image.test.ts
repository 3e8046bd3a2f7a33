// pullImage in-process: an in-process registry, a local content store, the native snapshotter and the walking
// differ. Checks the lease lifecycle, the overlapped unpack and what is left after failures.
import http from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { createWalkingDiffer } from "@berth/diff/walking";
import { errorKind } from "@berth/errdefs";
import { type Descriptor, digestOf } from "@berth/oci-spec";
import type { Snapshotter } from "@berth/snapshotter";
import { createNativeSnapshotter } from "@berth/snapshotter/native";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { chainIDs } from "../src/identity.js";
import { all } from "../src/platforms/index.js";
import { type PullProgressEvent, pullImage } from "../src/pull/index.js";
import { createResolver } from "../src/remotes/index.js";
import { LabelGCRefSnapshotPrefix } from "../src/unpack/index.js";
import { type TempStore, buildImage, ctx, tempStore } from "./helpers.js";

const MANIFEST = "application/vnd.oci.image.manifest.v1+json";
const CONFIG = "application/vnd.oci.image.config.v1+json";
const LAYER = "application/vnd.oci.image.layer.v1.tar+gzip";

/** One repository `r/app` with tag `v1`; `corrupt` serves flipped bytes for that digest. */
function serveImage(blobs: Map<string, Buffer>, manifest: Buffer, opts: { corrupt?: string } = {}) {
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://x");
    if (url.pathname === "/v2/") return void res.writeHead(200).end();
    if (url.pathname === "/v2/r/app/manifests/v1" || url.pathname === `/v2/r/app/manifests/${digestOf(manifest)}`) {
      res.writeHead(200, {
        "content-type": MANIFEST,
        "content-length": manifest.length,
        "docker-content-digest": digestOf(manifest),
      });
      return void res.end(req.method === "HEAD" ? undefined : manifest);
    }
    const m = /^\/v2\/r\/app\/blobs\/(sha256:[0-9a-f]{64})$/.exec(url.pathname);
    const data = m ? blobs.get(m[1] as string) : undefined;
    if (!data) return void res.writeHead(404).end();
    const body = opts.corrupt === m?.[1] ? Buffer.from(data.map((b) => b ^ 1)) : data;
    res.writeHead(200, { "content-length": body.length }).end(req.method === "HEAD" ? undefined : body);
  });
  return {
    listen: () =>
      new Promise<string>((resolve) =>
        server.listen(0, "127.0.0.1", () => resolve(`127.0.0.1:${(server.address() as AddressInfo).port}`)),
      ),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

async function testImage() {
  const img = await buildImage("amd64", ["a", "b", "c"]);
  const blobs = new Map<string, Buffer>();
  const add = (b: Buffer, mediaType: string): Descriptor => {
    blobs.set(digestOf(b), b);
    return { mediaType, digest: digestOf(b), size: b.length };
  };
  const config = add(img.config, CONFIG);
  const layers = img.layers.map((l) => add(l, LAYER));
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MANIFEST, config, layers }));
  return { blobs, manifest, config, layers, chain: chainIDs(img.diffIDs) };
}

describe("pullImage", () => {
  let ts: TempStore;
  let sn: Snapshotter & { close(): Promise<void> };
  const leases = new Set<string>();
  const registered = new Map<string, Descriptor>();
  let n = 0;
  const deps = (host: string) => ({
    content: ts.store,
    resolver: createResolver({ plainHttp: true }),
    leases: {
      async create(_c: unknown, o: { labels: Record<string, string> }) {
        expect(o.labels["containerd.io/gc.expire"]).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
        const id = `lease-${++n}-${host}`;
        leases.add(id);
        return { id };
      },
      async delete(_c: unknown, id: string) {
        leases.delete(id);
      },
    },
    images: {
      async register(_c: unknown, name: string, target: Descriptor) {
        registered.set(name, target);
      },
    },
  });
  const unpack = () => ({
    snapshotter: sn,
    applier: createWalkingDiffer({ content: ts.store }),
    snapshotterName: "native",
    platform: all,
  });

  beforeEach(async () => {
    ts = await tempStore();
    sn = createNativeSnapshotter({ root: path.join(ts.dir, "native") });
    leases.clear();
    registered.clear();
  });
  afterEach(async () => {
    await sn.close();
    await ts.cleanup();
  });

  it("fetches, unpacks while fetching, registers, and ends its lease", async () => {
    const img = await testImage();
    const reg = serveImage(img.blobs, img.manifest);
    const host = await reg.listen();
    try {
      const events: PullProgressEvent[] = [];
      const r = await pullImage(ctx, deps(host), `${host}/r/app:v1`, {
        onProgress: (e) => events.push(e),
        unpack: unpack(),
      });
      expect(r.name).toBe(`${host}/r/app:v1`);
      expect(r.fetched).toBe(5);
      expect(r.unpacked).toMatchObject({ chainID: img.chain[2], applied: 3 });
      expect(registered.get(r.name)?.digest).toBe(digestOf(img.manifest));
      expect(leases.size).toBe(0);
      expect(events.some((e) => e.state === "downloading" && e.desc.digest === img.layers[0]?.digest)).toBe(true);
      expect((await sn.stat(ctx, img.chain[2] as string)).kind).toBe("committed");
      const config = await ts.store.info(ctx, img.config.digest);
      expect(config.labels[`${LabelGCRefSnapshotPrefix}native`]).toBe(img.chain[2]);
      // again: nothing fetched, nothing applied
      const again = await pullImage(ctx, deps(host), `${host}/r/app:v1`, { unpack: unpack() });
      expect(again).toMatchObject({ fetched: 0, existing: 5, unpacked: { applied: 0 } });
    } finally {
      await reg.close();
    }
  });

  it("an unknown tag is NotFound and leaves no lease (nothing to resume)", async () => {
    const img = await testImage();
    const reg = serveImage(img.blobs, img.manifest);
    const host = await reg.listen();
    try {
      const err = await pullImage(ctx, deps(host), `${host}/r/app:nope`).catch((e: unknown) => e);
      expect(errorKind(err)).toBe("NotFound");
      expect(leases.size).toBe(0);
      expect(registered.size).toBe(0);
    } finally {
      await reg.close();
    }
  });

  it("a corrupt layer is FailedPrecondition: nothing registered, no active snapshot, the lease kept for resume", async () => {
    const img = await testImage();
    const bad = img.layers[1]?.digest as string;
    const reg = serveImage(img.blobs, img.manifest, { corrupt: bad });
    const host = await reg.listen();
    try {
      const err = await pullImage(ctx, deps(host), `${host}/r/app:v1`, { concurrency: 1, unpack: unpack() }).catch(
        (e: unknown) => e,
      );
      expect(errorKind(err)).toBe("FailedPrecondition");
      expect(String(err)).toContain(bad);
      expect(registered.size).toBe(0);
      expect(leases.size).toBe(1);
      await expect(ts.store.info(ctx, bad)).rejects.toSatisfy((e) => errorKind(e) === "NotFound");
      const kinds: string[] = [];
      await sn.walk(ctx, (i) => {
        kinds.push(i.kind);
      });
      expect(kinds.filter((k) => k !== "committed")).toEqual([]);
    } finally {
      await reg.close();
    }
  });

  it("an aborted signal cancels the pull", async () => {
    const img = await testImage();
    const reg = serveImage(img.blobs, img.manifest);
    const host = await reg.listen();
    try {
      const ac = new AbortController();
      ac.abort(new Error("stop"));
      const err = await pullImage({ ...ctx, signal: ac.signal }, deps(host), `${host}/r/app:v1`).catch(
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(Error);
      expect(registered.size).toBe(0);
    } finally {
      await reg.close();
    }
  });
});

import { unpackAny } from "@berth/api";
import { ImageCreateSchema, ImageDeleteSchema, ImageUpdateSchema } from "@berth/api/events";
import { Images } from "@berth/api/services/images/v1";
import { isAlreadyExists, isFailedPrecondition, isInvalidArgument, isNotFound } from "@berth/errdefs";
import { toConnectError } from "@berth/errdefs/connect";
import type { EventPayload } from "@berth/events";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { afterEach, describe, expect, it } from "vitest";
import { GarbageCollector, openMetadataDb } from "../src/index.js";
import { imagesService } from "../src/service/index.js";
import { type Fixture, catchErr, fixture, put } from "./helpers.js";

const D1 = `sha256:${"a".repeat(64)}`;
const D2 = `sha256:${"b".repeat(64)}`;
const INDEX = "application/vnd.oci.image.index.v1+json";
const MANIFEST = "application/vnd.oci.image.manifest.v1+json";

const target = (digest = D1, mediaType = INDEX, annotations?: Record<string, string>) => ({
  digest,
  mediaType,
  size: 100,
  ...(annotations ? { annotations } : {}),
});

describe("ImageStore", () => {
  it("creates, gets, lists in name order and deletes, per namespace", async () => {
    const { images } = openMetadataDb(":memory:");
    const b = images.create("ns", { name: "docker.io/library/b:1", labels: { k: "v" }, target: target() });
    expect(b).toMatchObject({ name: "docker.io/library/b:1", labels: { k: "v" }, target: target() });
    expect(b.createdAt.getTime()).toBe(b.updatedAt.getTime());
    images.create("ns", { name: "a", target: target(D2, MANIFEST, { x: "y" }) });
    images.create("other", { name: "c", target: target() });
    expect(images.list("ns").map((i) => i.name)).toEqual(["a", "docker.io/library/b:1"]);
    expect(images.get("ns", "a").target).toEqual(target(D2, MANIFEST, { x: "y" }));
    expect(isNotFound(await catchErr(() => images.get("ns", "c")))).toBe(true);
    expect(isAlreadyExists(await catchErr(() => images.create("ns", { name: "a", target: target() })))).toBe(true);
    images.delete("ns", "a");
    expect(isNotFound(await catchErr(() => images.delete("ns", "a")))).toBe(true);
    expect(images.list("ns").map((i) => i.name)).toEqual(["docker.io/library/b:1"]);
  });

  it("rejects bad records with InvalidArgument", async () => {
    const { images } = openMetadataDb(":memory:");
    const bad = [
      { name: "", target: target() },
      { name: "x", target: { ...target(), digest: "sha256:nope" } },
      { name: "x", target: { ...target(), size: 0 } },
      { name: "x", target: { ...target(), mediaType: "" } },
      { name: "x", labels: { k: "v".repeat(5000) }, target: target() },
    ];
    for (const image of bad) expect(isInvalidArgument(await catchErr(() => images.create("ns", image)))).toBe(true);
    expect(images.list("ns")).toEqual([]);
  });

  it("filters on name, target digest and media type, labels and annotations", async () => {
    const { images } = openMetadataDb(":memory:");
    images.create("ns", { name: "one", labels: { a: "1" }, target: target(D1, INDEX, { note: "x" }) });
    images.create("ns", { name: "two", labels: { a: "2" }, target: target(D2, MANIFEST) });
    const names = (filters: string[]) => images.list("ns", filters).map((i) => i.name);
    expect(names(["name==one"])).toEqual(["one"]);
    expect(names([`target.digest==${D2}`])).toEqual(["two"]);
    expect(names([`target.mediatype==${MANIFEST}`])).toEqual(["two"]);
    expect(names(["labels.a==1", "labels.a==2"])).toEqual(["one", "two"]);
    expect(names(["labels.a==1,name==two"])).toEqual([]);
    expect(names(["annotations.note==x"])).toEqual(["one"]);
    expect(names(["name~=^t"])).toEqual(["two"]);
    expect(isInvalidArgument(await catchErr(() => images.list("ns", ["name=="])))).toBe(true);
  });

  it("updates by field paths, or replaces the record without them", async () => {
    const { images } = openMetadataDb(":memory:");
    const created = images.create("ns", {
      name: "img",
      labels: { a: "1", b: "2" },
      target: target(D1, INDEX, { x: "1" }),
    });
    let u = images.update("ns", { name: "img", labels: { a: "9", c: "3" }, target: target(D2) }, ["labels.a"]);
    expect(u.labels).toEqual({ a: "9", b: "2" });
    expect(u.target.digest).toBe(D1);
    // an empty value removes the label (containerd answers without it)
    u = images.update("ns", { name: "img", target: target() }, ["labels.b"]);
    expect(u.labels).toEqual({ a: "9" });
    expect(images.get("ns", "img").labels).toEqual({ a: "9" });
    u = images.update("ns", { name: "img", target: target(D2, MANIFEST, { y: "2" }) }, ["target"]);
    expect(u.target).toEqual(target(D2, MANIFEST, { y: "2" }));
    u = images.update("ns", { name: "img", target: target(D1, INDEX, { z: "3" }) }, ["annotations.z"]);
    expect(images.get("ns", "img").target).toEqual(target(D2, MANIFEST, { y: "2", z: "3" }));
    images.update("ns", { name: "img", labels: { q: "1" }, target: target() }, ["labels"]);
    expect(images.get("ns", "img").labels).toEqual({ q: "1" });
    u = images.update("ns", { name: "img", labels: { r: "1" }, target: target() });
    expect(u).toMatchObject({ labels: { r: "1" }, target: target() });
    expect(u.createdAt).toEqual(created.createdAt);
    expect(
      isInvalidArgument(await catchErr(() => images.update("ns", { name: "img", target: target() }, ["name"]))),
    ).toBe(true);
    expect(
      isInvalidArgument(await catchErr(() => images.update("ns", { name: "img", target: { ...target(), size: 0 } }))),
    ).toBe(true);
    expect(isNotFound(await catchErr(() => images.update("ns", { name: "nope", target: target() }, ["target"])))).toBe(
      true,
    );
    expect(isInvalidArgument(await catchErr(() => images.update("ns", { name: "", target: target() })))).toBe(true);
  });

  it("keeps a namespace with images from being deleted", async () => {
    const db = openMetadataDb(":memory:");
    db.images.create("ns", { name: "img", target: target() });
    const err = await catchErr(() => db.namespaces.delete("ns"));
    expect(isFailedPrecondition(err)).toBe(true);
    expect((err as Error).message).toContain("images");
    db.images.delete("ns", "img");
    db.namespaces.delete("ns");
  });
});

describe("images as GC roots", () => {
  let f: Fixture;
  afterEach(async () => f?.dispose());

  it("keep their target and what its gc.ref labels reach, until deleted", async () => {
    f = await fixture();
    const layer = await put(f.cs, "ns", "layer");
    const config = await put(f.cs, "ns", "config");
    const manifest = await put(f.cs, "ns", "manifest", {
      labels: { "containerd.io/gc.ref.content.l.0": layer, "containerd.io/gc.ref.content.config": config },
    });
    const stray = await put(f.cs, "ns", "stray");
    const labelled = await put(f.cs, "ns", "labelled");
    let deletes = 0;
    f.db.onChange((c) => {
      if (c === "delete") deletes++;
    });
    f.db.images.create("ns", { name: "img", target: target(manifest, MANIFEST) });
    f.db.images.create("ns", {
      name: "other",
      labels: { "containerd.io/gc.ref.content.extra": labelled },
      target: target(config, MANIFEST),
    });
    const gc = new GarbageCollector(f.db);
    await gc.collect();
    for (const d of [layer, config, manifest, labelled]) expect(f.onDisk(d)).toBe(true);
    expect(f.onDisk(stray)).toBe(false);

    f.db.images.delete("ns", "other");
    expect(deletes).toBe(1);
    await gc.collect();
    expect(f.onDisk(labelled)).toBe(false);
    expect(f.onDisk(config)).toBe(true); // still the manifest's config
    f.db.images.delete("ns", "img");
    await gc.collect();
    for (const d of [layer, config, manifest]) expect(f.onDisk(d)).toBe(false);
  });
});

describe("Images service", () => {
  const setup = () => {
    const db = openMetadataDb(":memory:");
    let collections = 0;
    const events: Array<{ ns: string; topic: string; event: EventPayload }> = [];
    const impl = imagesService(
      db.images,
      { publish: (ns, topic, event) => events.push({ ns, topic, event }) },
      {
        collect: async () => {
          collections++;
        },
      },
    );
    const transport = createRouterTransport(({ service }) => service(Images, impl), {
      router: {
        interceptors: [
          (next) => async (req) => {
            try {
              return await next(req);
            } catch (err) {
              throw err instanceof ConnectError ? err : toConnectError(err);
            }
          },
        ],
      },
    });
    return { db, events, client: createClient(Images, transport), collections: () => collections };
  };
  const headers = { "containerd-namespace": "ns" };
  const protoTarget = (digest = D1) => ({ mediaType: INDEX, digest, size: 100n, annotations: {} });

  it("serves Create, Get, List, Update and Delete with events", async () => {
    const { client, events, collections } = setup();
    const created = await client.create(
      { image: { name: "img", labels: { a: "1" }, target: protoTarget() } },
      { headers },
    );
    expect(created.image?.name).toBe("img");
    expect(created.image?.createdAt?.seconds).toBeGreaterThan(0n);
    const dup = await catchErr(() => client.create({ image: { name: "img", target: protoTarget() } }, { headers }));
    expect((dup as ConnectError).code).toBe(Code.AlreadyExists);
    const got = await client.get({ name: "img" }, { headers });
    expect(got.image?.target).toMatchObject({ digest: D1, size: 100n, mediaType: INDEX });
    const updated = await client.update(
      {
        image: { name: "img", labels: { b: "2" }, target: protoTarget(D2) },
        updateMask: { paths: ["labels.b", "target"] },
      },
      { headers },
    );
    expect(updated.image?.labels).toEqual({ a: "1", b: "2" });
    expect(updated.image?.target?.digest).toBe(D2);
    expect((await client.list({ filters: ["labels.b==2"] }, { headers })).images.map((i) => i.name)).toEqual(["img"]);
    await client.delete({ name: "img", sync: true }, { headers });
    expect(collections()).toBe(1);
    const missing = await catchErr(() => client.get({ name: "img" }, { headers }));
    expect((missing as ConnectError).code).toBe(Code.NotFound);
    const missingDelete = await catchErr(() => client.delete({ name: "img" }, { headers }));
    expect((missingDelete as ConnectError).code).toBe(Code.NotFound);

    expect(events.map((e) => [e.ns, e.topic])).toEqual([
      ["ns", "/images/create"],
      ["ns", "/images/update"],
      ["ns", "/images/delete"],
    ]);
    const [c, u, d] = events;
    expect(unpackAny(ImageCreateSchema, c!.event as never)).toMatchObject({ name: "img", labels: { a: "1" } });
    expect(unpackAny(ImageUpdateSchema, u!.event as never)).toMatchObject({ name: "img", labels: { a: "1", b: "2" } });
    expect(unpackAny(ImageDeleteSchema, d!.event as never)).toMatchObject({ name: "img" });
  });

  it("answers with containerd's codes", async () => {
    const { client, events } = setup();
    const code = async (fn: () => Promise<unknown>) => ((await catchErr(fn)) as ConnectError).code;
    expect(await code(() => client.list({}))).toBe(Code.FailedPrecondition);
    expect(await code(() => client.create({ image: { name: "x", target: protoTarget() } }))).toBe(
      Code.FailedPrecondition,
    );
    expect(await code(() => client.create({ image: { name: "", target: protoTarget() } }, { headers }))).toBe(
      Code.InvalidArgument,
    );
    expect(await code(() => client.create({ image: { name: "x" } }, { headers }))).toBe(Code.InvalidArgument);
    expect(
      await code(() =>
        client.create({ image: { name: "x", target: { ...protoTarget(), digest: "bad" } } }, { headers }),
      ),
    ).toBe(Code.InvalidArgument);
    expect(await code(() => client.update({ image: { name: "x", target: protoTarget() } }, { headers }))).toBe(
      Code.NotFound,
    );
    expect(await code(() => client.list({ filters: ["name=="] }, { headers }))).toBe(Code.InvalidArgument);
    await client.create({ image: { name: "x", target: protoTarget() } }, { headers });
    expect(
      await code(() =>
        client.update({ image: { name: "x", target: protoTarget() }, updateMask: { paths: ["size"] } }, { headers }),
      ),
    ).toBe(Code.InvalidArgument);
    expect(events.map((e) => e.topic)).toEqual(["/images/create"]);
  });
});

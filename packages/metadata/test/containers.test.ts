import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { unpackAny } from "@berth/api";
import { ContainerCreateSchema, ContainerDeleteSchema, ContainerUpdateSchema } from "@berth/api/events";
import { Containers } from "@berth/api/services/containers/v1";
import { isAlreadyExists, isFailedPrecondition, isInvalidArgument, isNotFound } from "@berth/errdefs";
import { toConnectError } from "@berth/errdefs/connect";
import type { EventPayload } from "@berth/events";
import { createNativeSnapshotter } from "@berth/snapshotter/native";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { GarbageCollector, openMetadataDb } from "../src/index.js";
import { containersService } from "../src/service/index.js";
import { catchErr } from "./helpers.js";

const SPEC = {
  typeUrl: "types.containerd.io/opencontainers/runtime-spec/1/Spec",
  value: Buffer.from('{"ociVersion":"1.0.2"}'),
};
const RUNC = { name: "io.containerd.runc.v2" };
const base = { runtime: RUNC, spec: SPEC };

describe("ContainerStore", () => {
  it("creates, gets, lists in id order, filters and deletes, per namespace", async () => {
    const { containers } = openMetadataDb(":memory:");
    const b = containers.create("ns", {
      id: "b",
      ...base,
      image: "docker.io/library/busybox:latest",
      labels: { k: "v" },
      snapshotter: "overlayfs",
      snapshotKey: "b",
      extensions: { ext: { typeUrl: "x.y.Z", value: new Uint8Array([1, 2]) } },
    });
    expect(b).toMatchObject({
      id: "b",
      image: "docker.io/library/busybox:latest",
      labels: { k: "v" },
      snapshotKey: "b",
    });
    expect(Buffer.from(b.spec?.value ?? []).toString()).toBe('{"ociVersion":"1.0.2"}');
    expect(b.extensions.ext?.typeUrl).toBe("x.y.Z");
    containers.create("ns", { id: "a", ...base });
    containers.create("other", { id: "c", ...base });
    expect(containers.list("ns").map((c) => c.id)).toEqual(["a", "b"]);
    expect(containers.list("ns", ["labels.k==v"]).map((c) => c.id)).toEqual(["b"]);
    expect(containers.list("ns", ["image~=busybox", "id==a"]).map((c) => c.id)).toEqual(["a", "b"]);
    expect(containers.list("ns", ["runtime.name==io.containerd.runc.v2"]).length).toBe(2);
    expect(isInvalidArgument(await catchErr(() => containers.list("ns", ["labels.k=="])))).toBe(true);
    expect(isNotFound(await catchErr(() => containers.get("ns", "c")))).toBe(true);
    expect(isAlreadyExists(await catchErr(() => containers.create("ns", { id: "a", ...base })))).toBe(true);
    containers.delete("ns", "a");
    expect(isNotFound(await catchErr(() => containers.delete("ns", "a")))).toBe(true);
  });

  it("validates as containerd does", async () => {
    const { containers } = openMetadataDb(":memory:");
    const bad = async (input: Parameters<typeof containers.create>[1]) => {
      const err = await catchErr(() => containers.create("ns", input));
      expect(isInvalidArgument(err)).toBe(true);
      return (err as Error).message;
    };
    expect(await bad({ id: "", ...base })).toContain("container.ID");
    expect(await bad({ id: "../x", ...base })).toContain("container.ID");
    expect(await bad({ id: "x".repeat(77), ...base })).toContain("maximum length");
    expect(await bad({ id: "x", spec: SPEC })).toContain("container.Runtime.Name must be set");
    expect(await bad({ id: "x", runtime: RUNC })).toContain("container.Spec must be set");
    expect(await bad({ id: "x", ...base, snapshotKey: "k" })).toContain("container.Snapshotter must be set");
    expect(await bad({ id: "x", ...base, labels: { k: "v".repeat(4096) } })).toContain("containers.Labels");
    expect(await bad({ id: "x", ...base, extensions: { "": SPEC } })).toContain("Extension keys");
    expect(isInvalidArgument(await catchErr(() => containers.create("bad/ns", { id: "x", ...base })))).toBe(true);
    expect(containers.list("ns")).toEqual([]);
  });

  it("updates by field paths; immutable fields stay", async () => {
    const { containers } = openMetadataDb(":memory:");
    const created = containers.create("ns", {
      id: "c",
      ...base,
      labels: { a: "1", b: "2" },
      snapshotter: "native",
      snapshotKey: "k",
    });
    const u1 = containers.update("ns", { id: "c", labels: { b: "", c: "3" } }, ["labels.b", "labels.c"]);
    expect(u1.labels).toEqual({ a: "1", c: "3" });
    expect(u1.createdAt).toEqual(created.createdAt);
    const u2 = containers.update("ns", { id: "c", image: "img", snapshotKey: "k2" }, ["image", "snapshotkey"]);
    expect(u2).toMatchObject({ image: "img", snapshotKey: "k2", snapshotter: "native", runtime: RUNC });
    const ext = { typeUrl: "t", value: new Uint8Array([9]) };
    expect(containers.update("ns", { id: "c", extensions: { e: ext } }, ["extensions.e"]).extensions.e?.typeUrl).toBe(
      "t",
    );
    for (const path of ["runtime", "snapshotter", "id", "createdat"]) {
      expect(isInvalidArgument(await catchErr(() => containers.update("ns", { id: "c", ...base }, [path])))).toBe(true);
    }
    // without paths: the snapshotter and runtime name must not change
    expect(
      isInvalidArgument(await catchErr(() => containers.update("ns", { id: "c", ...base, snapshotter: "overlayfs" }))),
    ).toBe(true);
    expect(
      isInvalidArgument(
        await catchErr(() =>
          containers.update("ns", { id: "c", spec: SPEC, runtime: { name: "x.y.z" }, snapshotter: "native" }),
        ),
      ),
    ).toBe(true);
    const whole = containers.update("ns", { id: "c", ...base, snapshotter: "native", labels: { z: "9" } });
    expect(whole.labels).toEqual({ z: "9" });
    expect(whole.snapshotKey).toBe("");
    // a spec cannot be removed
    expect(isInvalidArgument(await catchErr(() => containers.update("ns", { id: "c" }, ["spec"])))).toBe(true);
    expect(isNotFound(await catchErr(() => containers.update("ns", { id: "nope", ...base })))).toBe(true);
    expect(isInvalidArgument(await catchErr(() => containers.update("ns", { id: "", ...base })))).toBe(true);
  });

  it("a field path naming an Object property (labels.constructor) reads only the given labels", () => {
    const { containers } = openMetadataDb(":memory:");
    containers.create("ns", { id: "c", ...base, labels: { a: "1" } });
    const u = containers.update("ns", { id: "c", labels: {}, extensions: {} }, [
      "labels.constructor",
      "labels.toString",
      "extensions.constructor",
    ]);
    expect(u.labels).toEqual({ a: "1" });
    expect(u.extensions).toEqual({});
  });

  it("a namespace with containers cannot be deleted", async () => {
    const db = openMetadataDb(":memory:");
    db.namespaces.create("ns");
    db.containers.create("ns", { id: "c", ...base });
    const err = await catchErr(() => db.namespaces.delete("ns"));
    expect(isFailedPrecondition(err)).toBe(true);
    expect((err as Error).message).toContain("containers");
  });

  it("keeps its snapshot and labelled content from the collector", async () => {
    const dir = await mkdtemp(join(tmpdir(), "berth-metadata-containers-"));
    const backend = createNativeSnapshotter({ root: join(dir, "native") });
    const db = openMetadataDb(join(dir, "meta"));
    try {
      const sn = db.attachSnapshotter("native", backend);
      const gc = new GarbageCollector(db);
      await sn.prepare({ namespace: "ns" }, "rootfs-c", "");
      await sn.prepare({ namespace: "ns" }, "stray", "");
      await sn.prepare({ namespace: "ns" }, "by-label", "");
      db.containers.create("ns", {
        id: "c",
        ...base,
        snapshotter: "native",
        snapshotKey: "rootfs-c",
        labels: { "containerd.io/gc.ref.snapshot.native": "by-label" },
      });
      await gc.collect();
      const keys = async () => {
        const out: string[] = [];
        await sn.walk({ namespace: "ns" }, (i) => {
          out.push(i.name);
        });
        return out.sort();
      };
      expect(await keys()).toEqual(["by-label", "rootfs-c"]);
      db.containers.delete("ns", "c");
      await gc.collect();
      expect(await keys()).toEqual([]);
    } finally {
      await backend.close();
      db.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("Containers service", () => {
  it("serves the store, publishes events and maps errors to codes", async () => {
    const { containers } = openMetadataDb(":memory:");
    const published: Array<{ ns: string; topic: string; event: EventPayload }> = [];
    const impl = containersService(containers, { publish: (ns, topic, event) => published.push({ ns, topic, event }) });
    const transport = createRouterTransport(({ service }) => service(Containers, impl), {
      router: {
        interceptors: [
          (next) => async (req) => {
            try {
              return await next(req);
            } catch (e) {
              throw toConnectError(e);
            }
          },
        ],
      },
    });
    const client = createClient(Containers, transport);
    const h = (ns?: string) => ({ headers: ns === undefined ? {} : { "containerd-namespace": ns } });
    const code = async (p: Promise<unknown>) => {
      try {
        await p;
        return "OK";
      } catch (e) {
        return Code[ConnectError.from(e).code];
      }
    };
    const created = await client.create(
      {
        container: {
          id: "c1",
          ...base,
          runtime: { name: RUNC.name, options: { typeUrl: "containerd.runc.v1.Options", value: new Uint8Array() } },
        },
      },
      h("ns"),
    );
    expect(created.container?.runtime?.options?.typeUrl).toBe("containerd.runc.v1.Options");
    expect(await code(client.create({ container: { id: "c1", ...base } }, h("ns")))).toBe("AlreadyExists");
    expect(await code(client.get({ id: "c1" }, h("other")))).toBe("NotFound");
    expect(await code(client.get({ id: "c1" }))).toBe("FailedPrecondition");
    expect(await code(client.create({}, h("ns")))).toBe("InvalidArgument");
    const streamed = [];
    for await (const m of client.listStream({}, h("ns"))) streamed.push(m.container?.id);
    expect(streamed).toEqual(["c1"]);
    await client.update({ container: { id: "c1", labels: { x: "y" } }, updateMask: { paths: ["labels.x"] } }, h("ns"));
    await client.delete({ id: "c1" }, h("ns"));
    expect(published.map((p) => `${p.ns} ${p.topic}`)).toEqual([
      "ns /containers/create",
      "ns /containers/update",
      "ns /containers/delete",
    ]);
    expect(unpackAny(ContainerCreateSchema, published[0]!.event as never)?.runtime?.name).toBe(RUNC.name);
    expect(unpackAny(ContainerUpdateSchema, published[1]!.event as never)?.labels).toEqual({ x: "y" });
    expect(unpackAny(ContainerDeleteSchema, published[2]!.event as never)?.id).toBe("c1");
  });
});

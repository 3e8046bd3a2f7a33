import { Leases } from "@berth/api/services/leases/v1";
import { isAlreadyExists, isInvalidArgument, isNotFound, isNotImplemented } from "@berth/errdefs";
import { toConnectError } from "@berth/errdefs/connect";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { generateLeaseId, openMetadataDb } from "../src/index.js";
import { leasesService } from "../src/service/index.js";
import { catchErr } from "./helpers.js";

const D1 = `sha256:${"a".repeat(64)}`;

describe("LeaseStore", () => {
  it("creates, lists with filters and deletes", async () => {
    const { leases } = openMetadataDb(":memory:");
    const l = leases.create("ns", { id: "b", labels: { k: "v" } });
    expect(l).toMatchObject({ id: "b", labels: { k: "v" } });
    leases.create("ns", { id: "a" });
    leases.create("other", { id: "c" });
    expect(leases.list("ns").map((x) => x.id)).toEqual(["a", "b"]);
    expect(leases.list("ns", ["labels.k==v"]).map((x) => x.id)).toEqual(["b"]);
    expect(leases.list("ns", ["id==a", "id==b"]).map((x) => x.id)).toEqual(["a", "b"]);
    expect(leases.list("ns", ["id==a,labels.k"]).map((x) => x.id)).toEqual([]);
    expect(isAlreadyExists(await catchErr(() => leases.create("ns", { id: "a" })))).toBe(true);
    expect(isInvalidArgument(await catchErr(() => leases.create("ns", { id: "" })))).toBe(true);
    // containerd 1.6 takes any non-empty lease id, and drops labels with an empty value
    expect(leases.create("ns", { id: "a/b", labels: { k: "", x: "y" } }).labels).toEqual({ x: "y" });
    expect(leases.get("ns", "a/b").labels).toEqual({ x: "y" });
    leases.delete("ns", "a/b");
    expect(isInvalidArgument(await catchErr(() => leases.list("ns", ["id=="])))).toBe(true);
    leases.delete("ns", "a");
    expect(isNotFound(await catchErr(() => leases.delete("ns", "a")))).toBe(true);
    expect(leases.list("ns").map((x) => x.id)).toEqual(["b"]);
  });

  it("adds, lists and deletes resources", async () => {
    const { leases } = openMetadataDb(":memory:");
    leases.create("ns", { id: "l" });
    leases.addResource("ns", "l", { type: "snapshots/overlayfs", id: "k1" });
    leases.addResource("ns", "l", { type: "ingests", id: "ref1" });
    leases.addResource("ns", "l", { type: "content", id: D1 });
    leases.addResource("ns", "l", { type: "content", id: D1 });
    expect(leases.listResources("ns", "l")).toEqual([
      { type: "content", id: D1 },
      { type: "ingests", id: "ref1" },
      { type: "snapshots/overlayfs", id: "k1" },
    ]);
    leases.deleteResource("ns", "l", { type: "ingests", id: "ref1" });
    expect(leases.listResources("ns", "l")).toHaveLength(2);
    expect(isInvalidArgument(await catchErr(() => leases.addResource("ns", "l", { type: "content", id: "x" })))).toBe(
      true,
    );
    expect(isInvalidArgument(await catchErr(() => leases.addResource("ns", "l", { type: "snapshots", id: "x" })))).toBe(
      true,
    );
    expect(isNotImplemented(await catchErr(() => leases.addResource("ns", "l", { type: "images", id: "x" })))).toBe(
      true,
    );
    expect(isNotFound(await catchErr(() => leases.addResource("ns", "nope", { type: "ingests", id: "x" })))).toBe(true);
    expect(isNotFound(await catchErr(() => leases.listResources("ns", "nope")))).toBe(true);
  });

  it("generates ids like containerd's WithRandomID", () => {
    for (let i = 0; i < 100; i++) {
      // <nanoseconds within the second>-<base64url of 3 bytes>
      expect(generateLeaseId()).toMatch(/^\d{1,9}-[A-Za-z0-9_-]{4}$/);
    }
  });
});

describe("Leases service", () => {
  const setup = () => {
    const db = openMetadataDb(":memory:");
    let collections = 0;
    const impl = leasesService(db.leases, {
      collect: async () => {
        collections++;
      },
    });
    const transport = createRouterTransport(({ service }) => service(Leases, impl), {
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
    return { db, client: createClient(Leases, transport), collections: () => collections };
  };
  const headers = { "containerd-namespace": "ns" };

  it("serves Create, List, resources and Delete in a namespace", async () => {
    const { client, collections } = setup();
    const created = await client.create({ id: "", labels: { a: "b" } }, { headers });
    expect(created.lease?.id).toMatch(/^\d+-/);
    expect(created.lease?.createdAt?.seconds).toBeGreaterThan(0n);
    await client.create({ id: "mine" }, { headers });
    const dup = await catchErr(() => client.create({ id: "mine" }, { headers }));
    expect((dup as ConnectError).code).toBe(Code.AlreadyExists);
    const listed = await client.list({ filters: ["labels.a==b"] }, { headers });
    expect(listed.leases.map((l) => l.id)).toEqual([created.lease?.id]);
    await client.addResource({ id: "mine", resource: { id: D1, type: "content" } }, { headers });
    expect((await client.listResources({ id: "mine" }, { headers })).resources.map((r) => r.id)).toEqual([D1]);
    await client.deleteResource({ id: "mine", resource: { id: D1, type: "content" } }, { headers });
    expect((await client.listResources({ id: "mine" }, { headers })).resources).toEqual([]);
    await client.delete({ id: "mine", sync: true }, { headers });
    expect(collections()).toBe(1);
    const missing = await catchErr(() => client.delete({ id: "mine" }, { headers }));
    expect((missing as ConnectError).code).toBe(Code.NotFound);
    const noNs = await catchErr(() => client.list({}));
    expect((noNs as ConnectError).code).toBe(Code.FailedPrecondition);
  });
});

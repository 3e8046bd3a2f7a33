import { isFailedPrecondition, isNotFound } from "@berth/errdefs";
import { describe, expect, it } from "vitest";
import { Registry, SkipPluginError, definePlugin, loadPlugins, pluginType, silentLogger } from "../src/index.js";

const Store = pluginType<{ name: string }>("test.store.v1");
const Service = pluginType<{ uses: string[] }>("test.service.v1");
const Other = pluginType<string>("test.other.v1");
const daemon = {
  root: "/r",
  state: "/s",
  address: "/a.sock",
  ttrpcAddress: "/a.sock.ttrpc",
  version: "v",
  revision: "r",
};

describe("Registry", () => {
  it("rejects duplicates, empty ids and self requirements", () => {
    const r = new Registry();
    r.register(definePlugin({ type: Store, id: "a", init: () => ({ name: "a" }) }));
    expect(() => r.register(definePlugin({ type: Store, id: "a", init: () => ({ name: "a" }) }))).toThrow(
      /already exists/,
    );
    expect(() => r.register(definePlugin({ type: Store, id: "", init: () => ({ name: "" }) }))).toThrow(/no id/);
    expect(() =>
      r.register(definePlugin({ type: Store, id: "b", requires: [Store], init: () => ({ name: "b" }) })),
    ).toThrow(/requires its own type/);
  });

  it("orders by requirements, registration order breaking ties, '*' last", () => {
    const r = new Registry();
    const all = definePlugin({ type: Other, id: "all", requires: "*", init: () => "x" });
    const svc = definePlugin({ type: Service, id: "svc", requires: [Store], init: () => ({ uses: [] }) });
    const s1 = definePlugin({ type: Store, id: "s1", init: () => ({ name: "s1" }) });
    const s2 = definePlugin({ type: Store, id: "s2", init: () => ({ name: "s2" }) });
    r.registerAll([all, svc, s1, s2]);
    expect(r.graph().map((x) => x.id)).toEqual(["s1", "s2", "svc", "all"]);
    expect(r.graph((x) => x.id === "s1").map((x) => x.id)).toEqual(["s2", "svc", "all"]);
  });

  it("detects cycles", () => {
    const A = pluginType<number>("t.a");
    const B = pluginType<number>("t.b");
    const r = new Registry().registerAll([
      definePlugin({ type: A, id: "a", requires: [B], init: () => 1 }),
      definePlugin({ type: B, id: "b", requires: [A], init: () => 2 }),
    ]);
    expect(() => r.graph()).toThrow(/cycle/);
  });
});

describe("loadPlugins", () => {
  it("inits in order, parses config, records skip and error, closes in reverse", async () => {
    const closed: string[] = [];
    const r = new Registry().registerAll([
      definePlugin({
        type: Service,
        id: "svc",
        requires: [Store],
        init: (ic) => ({ uses: [...ic.getByType(Store).keys()] }),
      }),
      definePlugin({
        type: Store,
        id: "configured",
        config: { defaults: { size: 1 }, parse: (raw) => ({ size: 1, ...(raw as object) }) },
        init: (ic) => ({
          name: `size=${ic.config.size} root=${ic.rootDir}`,
          close: () => void closed.push("configured"),
        }),
      }),
      definePlugin({
        type: Store,
        id: "skipper",
        init: () => {
          throw new SkipPluginError("no btrfs");
        },
      }),
      definePlugin({
        type: Store,
        id: "broken",
        init: () => {
          throw new Error("boom");
        },
      }),
      definePlugin({ type: Other, id: "sneaky", init: (ic) => String(ic.getSingle(Store)) }),
    ]);
    const loaded = await loadPlugins(r, {
      daemon,
      log: silentLogger,
      configs: { "test.store.v1.configured": { size: 7 } },
    });
    expect(loaded.byId(Store, "configured").name).toBe("size=7 root=/r/test.store.v1.configured");
    expect(loaded.single(Service).uses).toEqual(["configured"]);
    const states = Object.fromEntries(loaded.statuses.map((s) => [s.id, s.state]));
    expect(states).toEqual({ configured: "ok", skipper: "skipped", broken: "error", svc: "ok", sneaky: "error" });
    expect(loaded.statuses.find((s) => s.id === "sneaky")?.error?.message).toMatch(/did not declare/);
    await loaded.close(silentLogger);
    expect(closed).toEqual(["configured"]);
  });

  it("fails when a required plugin fails or is missing", async () => {
    const r = new Registry().register(
      definePlugin({
        type: Store,
        id: "broken",
        init: () => {
          throw new Error("boom");
        },
      }),
    );
    await expect(loadPlugins(r, { daemon, log: silentLogger, required: ["test.store.v1.broken"] })).rejects.toSatisfy(
      isFailedPrecondition,
    );
    await expect(loadPlugins(r, { daemon, log: silentLogger, required: ["test.store.v1.none"] })).rejects.toSatisfy(
      isNotFound,
    );
    const loaded = await loadPlugins(r, { daemon, log: silentLogger, disabled: ["test.store.v1.broken"] });
    expect(loaded.statuses).toEqual([]);
  });
});

import { packAny } from "@berth/api";
import { create } from "@bufbuild/protobuf";
import { NamespaceCreateSchema, TaskExitSchema } from "@berth/api/events";
import { Events } from "@berth/api/services/events/v1";
import { Introspection } from "@berth/api/services/introspection/v1";
import { Namespaces } from "@berth/api/services/namespaces/v1";
import { Version } from "@berth/api/services/version/v1";
import { Code, type ConnectRouter, ConnectError, createRouterTransport } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import type { ConnectionOptions } from "../src/connection.js";
import { NAMESPACE_HEADER, namespaceInterceptor } from "../src/connection.js";
import { createBufferOutput } from "../src/output.js";
import { runCli } from "../src/program.js";

interface Harness {
  readonly out: ReturnType<typeof createBufferOutput>;
  readonly connections: ConnectionOptions[];
  run(...argv: string[]): Promise<number>;
}

/** Runs berth against an in-memory Connect router instead of a socket. */
function harness(routes: (router: ConnectRouter) => void, env: Record<string, string> = {}): Harness {
  const out = createBufferOutput();
  const connections: ConnectionOptions[] = [];
  return {
    out,
    connections,
    run: (...argv) =>
      runCli(argv, {
        env,
        out,
        clientInfo: { version: "0.1.0", revision: "abc", nodeVersion: "v20.0.0" },
        connect: (options) => {
          connections.push(options);
          const transport = createRouterTransport(routes, {
            transport: { interceptors: [namespaceInterceptor(options.namespace)] },
          });
          return { transport, close: () => {} };
        },
      }),
  };
}

describe("berth version", () => {
  const routes = (r: ConnectRouter) => {
    r.service(Version, { version: () => ({ version: "1.6.20", revision: "r1" }) });
    r.service(Introspection, { server: () => ({ uuid: "u-1" }), plugins: () => ({}) });
  };

  it("prints client and server like ctr, warning on a version mismatch", async () => {
    const h = harness(routes);
    expect(await h.run("version")).toBe(0);
    expect(h.out.out).toBe(
      [
        "Client:",
        "  Version:  0.1.0",
        "  Revision: abc",
        "  Node version: v20.0.0",
        "",
        "Server:",
        "  Version:  1.6.20",
        "  Revision: r1",
        "  UUID: u-1",
        "",
      ].join("\n"),
    );
    expect(h.out.err).toBe("WARNING: version mismatch\n");
  });

  it("prints JSON with --json", async () => {
    const h = harness(routes);
    expect(await h.run("--json", "version")).toBe(0);
    expect(JSON.parse(h.out.out)).toEqual({
      client: { version: "0.1.0", revision: "abc", node_version: "v20.0.0" },
      server: { version: "1.6.20", revision: "r1", uuid: "u-1" },
    });
  });
});

describe("berth plugins ls", () => {
  let seenFilters: string[] = [];
  const routes = (r: ConnectRouter) => {
    r.service(Introspection, {
      server: () => ({}),
      plugins: (req) => {
        seenFilters = req.filters;
        return {
          plugins: [
            { type: "io.containerd.content.v1", id: "content" },
            {
              type: "io.containerd.snapshotter.v1",
              id: "aufs",
              platforms: [
                { os: "linux", architecture: "arm", variant: "v7" },
                { os: "linux", architecture: "amd64" },
                { os: "linux", architecture: "amd64" },
              ],
              initErr: { code: 2, message: "aufs is not supported: skip plugin" },
            },
            { type: "io.containerd.snapshotter.v1", id: "devmapper", initErr: { code: 2, message: "not configured" } },
          ],
        };
      },
    });
  };

  it("prints TYPE ID PLATFORMS STATUS with ctr's status rules", async () => {
    const h = harness(routes);
    expect(await h.run("plugins", "ls", "type==io.containerd.snapshotter.v1")).toBe(0);
    expect(seenFilters).toEqual(["type==io.containerd.snapshotter.v1"]);
    expect(h.out.out.split("\n")).toEqual([
      "TYPE                            ID           PLATFORMS                   STATUS    ",
      "io.containerd.content.v1        content      -                           ok        ",
      "io.containerd.snapshotter.v1    aufs         linux/amd64,linux/arm/v7    skip      ",
      "io.containerd.snapshotter.v1    devmapper    -                           error     ",
      "",
    ]);
  });

  it("prints only ids with -q (alias plugin)", async () => {
    const h = harness(routes);
    expect(await h.run("plugin", "ls", "-q")).toBe(0);
    expect(h.out.out).toBe("content\naufs\ndevmapper\n");
  });

  it("prints details with --detailed", async () => {
    const h = harness(routes);
    expect(await h.run("plugins", "ls", "--detailed")).toBe(0);
    expect(h.out.out).toContain("Code:        Unknown");
    expect(h.out.out).toContain("Platforms:     linux/amd64,linux/arm/v7");
  });

  it("prints JSON with --json", async () => {
    const h = harness(routes);
    expect(await h.run("plugins", "ls", "--json")).toBe(0);
    const parsed = JSON.parse(h.out.out) as Array<{ id: string; status: string }>;
    expect(parsed.map((p) => [p.id, p.status])).toEqual([
      ["content", "ok"],
      ["aufs", "skip"],
      ["devmapper", "error"],
    ]);
  });
});

describe("berth namespaces", () => {
  function fakeNamespaces() {
    const store = new Map<string, Record<string, string>>([["default", {}]]);
    const headers: string[] = [];
    const updates: Array<{ labels: Record<string, string>; paths: string[] }> = [];
    const routes = (r: ConnectRouter) => {
      r.service(Namespaces, {
        list: (_req, ctx) => {
          headers.push(ctx.requestHeader.get(NAMESPACE_HEADER) ?? "");
          return { namespaces: [...store.keys()].sort().map((name) => ({ name })) };
        },
        get: (req) => ({ namespace: { name: req.name, labels: store.get(req.name) ?? {} } }),
        create: (req) => {
          const name = req.namespace?.name ?? "";
          if (store.has(name)) throw new ConnectError(`namespace "${name}": already exists`, Code.AlreadyExists);
          store.set(name, { ...req.namespace?.labels });
          return { namespace: req.namespace };
        },
        update: (req) => {
          const name = req.namespace?.name ?? "";
          const labels = { ...store.get(name) };
          const given = req.namespace?.labels ?? {};
          updates.push({ labels: given, paths: req.updateMask?.paths ?? [] });
          for (const path of req.updateMask?.paths ?? []) {
            const key = path.slice("labels.".length);
            const value = given[key];
            if (value === undefined || value === "") delete labels[key];
            else labels[key] = value;
          }
          store.set(name, labels);
          return { namespace: { name, labels } };
        },
        delete: (req) => {
          if (!store.has(req.name)) throw new ConnectError(`namespace "${req.name}": not found`, Code.NotFound);
          if (req.name === "busy") throw new ConnectError(`namespace "busy" must be empty`, Code.FailedPrecondition);
          store.delete(req.name);
          return {};
        },
      });
    };
    return { store, headers, updates, routes };
  }

  it("creates with labels, labels (empty value removes) and lists like ctr", async () => {
    const fake = fakeNamespaces();
    const h = harness(fake.routes);
    expect(await h.run("namespaces", "create", "foo", "a=1", "b")).toBe(0);
    expect(fake.store.get("foo")).toEqual({ a: "1", b: "true" });
    expect(await h.run("ns", "label", "foo", "c=3", "a=")).toBe(0);
    expect(fake.updates).toEqual([
      { labels: { c: "3" }, paths: ["labels.c"] },
      { labels: { a: "" }, paths: ["labels.a"] },
    ]);
    expect(await h.run("namespace", "ls")).toBe(0);
    expect(h.out.out).toBe("NAME    LABELS     \ndefault            \nfoo     b=true,c=3 \n");
  });

  it("lists names with -q and JSON with --json", async () => {
    const fake = fakeNamespaces();
    fake.store.set("k8s.io", { z: "1", a: "2" });
    const h = harness(fake.routes);
    expect(await h.run("ns", "ls", "-q")).toBe(0);
    expect(h.out.out).toBe("default\nk8s.io\n");
    const j = harness(fake.routes);
    expect(await j.run("--json", "ns", "ls")).toBe(0);
    expect(j.out.out).toBe('[{"name":"default","labels":{}},{"name":"k8s.io","labels":{"a":"2","z":"1"}}]\n');
  });

  it("sends the namespace header from the flag or the environment", async () => {
    const fake = fakeNamespaces();
    await harness(fake.routes, { CONTAINERD_NAMESPACE: "env-ns" }).run("ns", "ls", "-q");
    await harness(fake.routes, { CONTAINERD_NAMESPACE: "env-ns" }).run("-n", "flag-ns", "ns", "ls", "-q");
    await harness(fake.routes, { BERTH_NAMESPACE: "b", CONTAINERD_NAMESPACE: "c" }).run("ns", "ls", "-q");
    expect(fake.headers).toEqual(["env-ns", "flag-ns", "b"]);
  });

  it("passes address and namespace to the connection", async () => {
    const h = harness(fakeNamespaces().routes, { BERTH_ADDRESS: "/env.sock" });
    await h.run("ns", "ls", "-q", "-a", "unix:///flag.sock");
    await h.run("ns", "ls", "-q");
    expect(h.connections.map((c) => c.address)).toEqual(["/flag.sock", "/env.sock"]);
  });

  it("reports a duplicate create as berth: <message> with exit status 1", async () => {
    const fake = fakeNamespaces();
    const h = harness(fake.routes);
    expect(await h.run("ns", "create", "default")).toBe(1);
    expect(h.out.err).toBe('berth: namespace "default": already exists\n');
  });

  it("removes several, ignoring missing ones, failing when one cannot be removed", async () => {
    const fake = fakeNamespaces();
    fake.store.set("a", {});
    fake.store.set("busy", {});
    const h = harness(fake.routes);
    expect(await h.run("ns", "rm", "a", "missing", "busy")).toBe(1);
    expect(h.out.out).toBe("a\nmissing\n");
    expect(h.out.err).toBe('berth: unable to delete busy: namespace "busy" must be empty\n');
    expect(fake.store.has("a")).toBe(false);
    const ok = harness(fake.routes);
    expect(await ok.run("ns", "remove", "busy2")).toBe(0);
  });
});

describe("berth events", () => {
  const ts = { seconds: 1795883219n, nanos: 412739049 };
  const routes = (r: ConnectRouter) => {
    r.service(Events, {
      async *subscribe(req) {
        expect(req.filters).toEqual(['topic=="/tasks/exit"']);
        yield {
          timestamp: ts,
          namespace: "default",
          topic: "/namespaces/create",
          event: packAny(
            NamespaceCreateSchema,
            create(NamespaceCreateSchema, { name: "n1", labels: { b: "2", a: "1" } }),
          ),
        };
        yield {
          timestamp: ts,
          namespace: "k8s.io",
          topic: "/tasks/exit",
          // a prefixed URL decodes as well
          event: {
            typeUrl: `type.googleapis.com/${TaskExitSchema.typeName}`,
            value: packAny(
              TaskExitSchema,
              create(TaskExitSchema, { containerId: "c", id: "c", pid: 9, exitStatus: 137 }),
            ).value,
          },
        };
        yield {
          timestamp: ts,
          namespace: "default",
          topic: "/custom",
          event: { typeUrl: "example.Unknown", value: new Uint8Array([1]) },
        };
      },
      publish: () => ({}),
      forward: () => ({}),
    });
  };

  it("prints timestamp, namespace, topic and the event as JSON, like ctr", async () => {
    const h = harness(routes);
    expect(await h.run("events", 'topic=="/tasks/exit"'), h.out.err).toBe(0);
    expect(h.out.out.split("\n")).toEqual([
      '2026-11-28 16:26:59.412739049 +0000 UTC default /namespaces/create {"name":"n1","labels":{"a":"1","b":"2"}}',
      '2026-11-28 16:26:59.412739049 +0000 UTC k8s.io /tasks/exit {"container_id":"c","id":"c","pid":9,"exit_status":137,"exited_at":"0001-01-01T00:00:00Z"}',
      "2026-11-28 16:26:59.412739049 +0000 UTC default /custom example.Unknown",
      "",
    ]);
  });

  it("prints one JSON object per line with --json", async () => {
    const h = harness(routes);
    expect(await h.run("--json", "events", 'topic=="/tasks/exit"')).toBe(0);
    const lines = h.out.out
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines[0]).toEqual({
      timestamp: "2026-11-28T16:26:59.412739049Z",
      namespace: "default",
      topic: "/namespaces/create",
      type: "containerd.events.NamespaceCreate",
      event: { name: "n1", labels: { a: "1", b: "2" } },
    });
    expect(lines[2]).toMatchObject({ type: "example.Unknown", event: null });
  });
});

describe("global behaviour", () => {
  it("fails with exit status 1 on a bad --timeout", async () => {
    const h = harness(() => {});
    expect(await h.run("--timeout", "forever", "ns", "ls")).toBe(1);
    expect(h.out.err).toMatch(/^berth: time: invalid duration "forever"/);
  });

  it("maps a deadline to 'context deadline exceeded'", async () => {
    const h = harness((r) => {
      r.service(Namespaces, {
        list: async (_req, ctx) => {
          await new Promise((resolve) => ctx.signal.addEventListener("abort", resolve));
          return {};
        },
      });
    });
    expect(await h.run("--timeout", "50ms", "ns", "ls")).toBe(1);
    expect(h.out.err).toBe("berth: context deadline exceeded\n");
  });

  it("prints help with exit status 0 and rejects unknown commands with 1", async () => {
    const h = harness(() => {});
    expect(await h.run("--help")).toBe(0);
    expect(h.out.out).toContain("namespaces|namespace");
    expect(await h.run("bogus")).toBe(1);
    expect(h.out.err).toContain("unknown command 'bogus'");
  });
});

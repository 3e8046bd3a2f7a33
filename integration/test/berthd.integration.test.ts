/**
 * berthd end to end: the daemon on a temp unix socket, driven by Debian's real `ctr` 1.6 and by raw gRPC.
 * Each test asserts what a user sees (ctr's output and exit code, gRPC status codes).
 */
import { existsSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import * as http2 from "node:http2";
import * as net from "node:net";
import { join } from "node:path";
import { Health, HealthCheckResponse_ServingStatus } from "@berth/api/grpc/health/v1";
import { Events } from "@berth/api/services/events/v1";
import { Namespaces } from "@berth/api/services/namespaces/v1";
import { Version } from "@berth/api/services/version/v1";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, afterEach, beforeAll, describe, expect, test } from "vitest";
import {
  BERTH_VERSION,
  type Berthd,
  berthdCommand,
  ctr,
  freePort,
  grpcTransport,
  normalise,
  skipReason,
  spawnCtr,
  type Streaming,
  startBerthd,
  stopAll,
  stopClients,
  withClient,
} from "../src/harness.js";

const reason = skipReason();

/** Rejected call → its ConnectError (fails the test when the call succeeds). */
async function rpcError(p: Promise<unknown>): Promise<ConnectError> {
  try {
    await p;
  } catch (err) {
    return ConnectError.from(err);
  }
  throw new Error("expected the call to fail");
}

/**
 * Creates namespaces until the streaming `ctr events` prints the create event: the subscription is set up
 * asynchronously, so the first create may come before it (there is no "subscribed" signal to wait for).
 */
async function waitEventsSubscribed(d: Berthd, events: Streaming, prefix: string): Promise<string> {
  for (let i = 0; i < 40; i++) {
    const name = `${prefix}${i}`;
    const res = await ctr(d.socket, "namespaces", "create", name);
    expect(res.code, res.stderr).toBe(0);
    try {
      return await events.waitFor(new RegExp(`/namespaces/create.*${name}`), 250);
    } catch {
      // not subscribed yet
    }
  }
  throw new Error(`ctr events never printed a /namespaces/create event:\n${events.stdout()}\n${events.stderr()}`);
}

describe.skipIf(reason !== undefined)(reason ? `berthd e2e (skipped: ${reason})` : "berthd e2e", () => {
  // One daemon (with metrics on) for the tests that only talk to it; each uses its own namespace names.
  describe("one shared daemon", () => {
    let d: Berthd;
    let port: number;
    beforeAll(async () => {
      port = await freePort();
      d = await startBerthd({ config: `version = 2\n[metrics]\n  address = "127.0.0.1:${port}"\n` });
    });
    afterEach(stopClients);
    afterAll(stopAll);

    test("ctr plugins ls lists every plugin ok, and filters by type", async () => {
      const all = await ctr(d.socket, "plugins", "ls");
      expect(all.code, all.stderr).toBe(0);
      const [header, ...rows] = normalise(all.stdout);
      expect(header).toBe("TYPE ID PLATFORMS STATUS");
      expect(rows.length).toBeGreaterThanOrEqual(5);
      for (const row of rows) expect(row.split(" ")[3], row).toBe("ok");
      const ids = rows.map((r) => r.split(" ").slice(0, 2).join(" "));
      for (const id of ["version", "namespaces", "events", "introspection", "healthcheck"]) {
        expect(ids).toContain(`io.containerd.grpc.v1 ${id}`);
      }
      expect(ids.some((i) => i.startsWith("io.containerd.metadata.v1 "))).toBe(true);

      const grpc = await ctr(d.socket, "plugins", "ls", "type==io.containerd.grpc.v1");
      expect(grpc.code, grpc.stderr).toBe(0);
      const grpcRows = normalise(grpc.stdout).slice(1);
      expect(grpcRows.length).toBe(rows.filter((r) => r.startsWith("io.containerd.grpc.v1 ")).length);
      for (const row of grpcRows) expect(row).toMatch(/^io\.containerd\.grpc\.v1 \S+ - ok$/);
    });

    test("ctr namespaces: create, label, ls, rm; duplicates and invalid names are refused", async () => {
      expect((await ctr(d.socket, "namespaces", "create", "a")).code).toBe(0);
      const label = await ctr(d.socket, "namespaces", "label", "a", "k=v");
      expect(label.code, label.stderr).toBe(0);
      const ls = await ctr(d.socket, "namespaces", "ls");
      expect(ls.code, ls.stderr).toBe(0);
      expect(normalise(ls.stdout)).toContain("a k=v");

      const dup = await ctr(d.socket, "namespaces", "create", "a");
      expect(dup.code).not.toBe(0);
      expect(dup.stderr).toContain("already exists");

      for (const bad of ["A/B", "a".repeat(77)]) {
        const res = await ctr(d.socket, "namespaces", "create", bad);
        expect(res.code, bad).not.toBe(0);
        expect(res.stderr).toContain("invalid argument");
      }

      // ctr sends the label as the namespace is created; key + value over 4096 bytes is refused
      const big = await ctr(d.socket, "namespaces", "create", "big", `k=${"x".repeat(5000)}`);
      expect(big.code).not.toBe(0);
      expect(big.stderr).toContain("invalid argument");

      const rm = await ctr(d.socket, "namespaces", "rm", "a");
      expect(rm.code, rm.stderr).toBe(0);
      expect(rm.stdout.trim()).toBe("a");
      const after = await ctr(d.socket, "namespaces", "ls", "-q");
      expect(after.code, after.stderr).toBe(0);
      expect(normalise(after.stdout)).not.toContain("a");
      expect(normalise(after.stdout)).not.toContain("big");
    });

    test("ctr events prints /namespaces/create while it runs", async () => {
      const events = spawnCtr(d.socket, "events");
      const line = await waitEventsSubscribed(d, events, "ev");
      expect(line).toContain("/namespaces/create");
      // a namespace created now shows up at once
      expect((await ctr(d.socket, "namespaces", "create", "later")).code).toBe(0);
      await events.waitFor(/\/namespaces\/create.*later/, 3000);
      await events.stop();
    });

    test("an unknown method is Unimplemented, as a trailers-only gRPC response", async () => {
      const session = http2.connect("http://localhost", { createConnection: () => net.connect(d.socket) });
      try {
        const res = await new Promise<{
          headers: http2.IncomingHttpHeaders;
          endStream: boolean;
          data: number;
          trailers: boolean;
        }>((resolve, reject) => {
          const req = session.request({
            ":method": "POST",
            ":path": "/containerd.services.nothing.v1.Nothing/Call",
            "content-type": "application/grpc",
            te: "trailers",
          });
          let headers: http2.IncomingHttpHeaders = {};
          let endStream = false;
          let data = 0;
          let trailers = false;
          req.on("response", (h, flags) => {
            headers = h;
            endStream = (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) !== 0;
          });
          req.on("data", (chunk: Buffer) => {
            data += chunk.length;
          });
          req.on("trailers", () => {
            trailers = true;
          });
          req.on("error", reject);
          req.on("close", () => resolve({ headers, endStream, data, trailers }));
          req.end(Buffer.from([0, 0, 0, 0, 0])); // one empty, uncompressed message
        });
        expect(res.headers[":status"]).toBe(200);
        expect(res.headers["content-type"]).toBe("application/grpc");
        expect(res.headers["grpc-status"]).toBe("12");
        expect(res.endStream).toBe(true);
        expect(res.data).toBe(0);
        expect(res.trailers).toBe(false);
      } finally {
        session.destroy();
      }

      // and a gRPC client sees Code.Unimplemented
      const conn = grpcTransport(d.socket, { namespace: "default" });
      try {
        const method = Version.method.version;
        const nothing = {
          ...method,
          name: "Call",
          parent: { ...Version, typeName: "containerd.services.nothing.v1.Nothing" },
        } as unknown as typeof method;
        const err = await rpcError(conn.transport.unary(nothing, undefined, 5000, undefined, {}));
        expect(err.code).toBe(Code.Unimplemented);
      } finally {
        conn.close();
      }
    });

    test("bad input: missing or invalid namespace, oversized message, oversized label", async () => {
      const event = { typeUrl: "containerd.events.NamespaceCreate", value: new Uint8Array() };

      const noNs = await withClient(d.socket, Events, (c) => rpcError(c.publish({ topic: "/test/e2e", event })));
      expect(noNs.code).toBe(Code.FailedPrecondition);
      expect(noNs.rawMessage).toContain("namespace is required");

      const badNs = await withClient(d.socket, Events, (c) => rpcError(c.publish({ topic: "/test/e2e", event })), {
        namespace: "A/B",
      });
      expect(badNs.code).toBe(Code.InvalidArgument);

      const huge = await withClient(d.socket, Namespaces, (c) =>
        rpcError(c.create({ namespace: { name: "huge", labels: { k: "x".repeat(20 << 20) } } })),
      );
      expect(huge.code).toBe(Code.ResourceExhausted);
      const v = await ctr(d.socket, "version");
      expect(v.code, v.stderr).toBe(0);
      expect(v.stdout).toContain(`Version:  ${BERTH_VERSION}`);

      const label = await withClient(d.socket, Namespaces, (c) =>
        rpcError(c.create({ namespace: { name: "labelled", labels: { k: "x".repeat(4096) } } })),
      );
      expect(label.code).toBe(Code.InvalidArgument);
      expect(label.rawMessage).toContain("4096");
      const ls = await ctr(d.socket, "namespaces", "ls", "-q");
      expect(normalise(ls.stdout)).not.toContain("labelled");
      expect(normalise(ls.stdout)).not.toContain("huge");
    });

    test("metrics: /v1/metrics counts gRPC calls", async () => {
      expect((await ctr(d.socket, "namespaces", "ls")).code).toBe(0);
      const res = await fetch(`http://127.0.0.1:${port}/v1/metrics`);
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toContain("text/plain");
      const text = await res.text();
      expect(text).toContain("grpc_server_handled_total");
      expect(text).toMatch(/grpc_server_handled_total\{[^}]*grpc_method="List"[^}]*\} [1-9]/);
      // a failed call is counted apart from the successful ones (by its code label)
      expect((await ctr(d.socket, "namespaces", "create", "metrics-dup")).code).toBe(0);
      expect((await ctr(d.socket, "namespaces", "create", "metrics-dup")).code).not.toBe(0);
      const after = await (await fetch(`http://127.0.0.1:${port}/v1/metrics`)).text();
      const creates = after
        .split("\n")
        .filter((l) => l.startsWith("grpc_server_handled_total{") && l.includes('grpc_method="Create"'));
      expect(creates.length, creates.join("\n")).toBeGreaterThanOrEqual(2);
      // codes are labelled by name, as containerd's grpc-prometheus does
      expect(
        creates.some((l) => l.includes('grpc_code="OK"')),
        creates.join("\n"),
      ).toBe(true);
      expect(
        creates.some((l) => l.includes('grpc_code="AlreadyExists"')),
        creates.join("\n"),
      ).toBe(true);
    });

    test("grpc.health.v1.Health/Check is SERVING", async () => {
      const res = await withClient(d.socket, Health, (c) => c.check({}));
      expect(res.status).toBe(HealthCheckResponse_ServingStatus.SERVING);
    });
  });

  // Tests that restart, kill or configure their own daemon.
  describe("a daemon each", () => {
    afterEach(stopAll);

    test("ctr version shows Berth's version and a UUID that survives a restart", async () => {
      const d = await startBerthd();
      const first = await ctr(d.socket, "version");
      expect(first.code, first.stderr).toBe(0);
      const server = first.stdout.slice(first.stdout.indexOf("Server:"));
      expect(server).toMatch(new RegExp(`Version:\\s+${BERTH_VERSION.replace(/\./g, "\\.")}\\n`));
      const uuid = /UUID:\s+([0-9a-f-]{36})/.exec(server)?.[1];
      expect(uuid).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);

      await d.restart();
      const second = await ctr(d.socket, "version");
      expect(second.code, second.stderr).toBe(0);
      expect(/UUID:\s+(\S+)/.exec(second.stdout)?.[1]).toBe(uuid);
    });

    test("namespaces survive a restart and a kill -9", async () => {
      const d = await startBerthd();
      expect((await ctr(d.socket, "namespaces", "create", "kept", "team=blue", "tier=1")).code).toBe(0);
      await d.restart();
      expect(normalise((await ctr(d.socket, "namespaces", "ls")).stdout)).toContain("kept team=blue,tier=1");

      expect((await ctr(d.socket, "namespaces", "create", "crash", "x=y")).code).toBe(0);
      const killed = await d.kill9();
      expect(killed.signal).toBe("SIGKILL");
      await d.restart(); // on the same root/state; the stale socket is replaced
      const ls = await ctr(d.socket, "namespaces", "ls");
      expect(ls.code, ls.stderr).toBe(0);
      const lines = normalise(ls.stdout);
      expect(lines).toContain("kept team=blue,tier=1");
      expect(lines).toContain("crash x=y");
    });

    test("SIGTERM: berthd exits 0, removes its socket and ends ctr events", async () => {
      const d = await startBerthd();
      const events = spawnCtr(d.socket, "events");
      await waitEventsSubscribed(d, events, "term");
      const started = Date.now();
      const status = await d.stop();
      expect(status).toEqual({ code: 0, signal: null });
      expect(Date.now() - started).toBeLessThan(5000);
      expect(existsSync(d.socket)).toBe(false);
      expect(existsSync(`${d.socket}.ttrpc`)).toBe(false);
      const ended = await events.exited(5000);
      expect(ended).not.toBe("timeout");
    });

    test("berthd config default prints a version 2 config that berthd accepts back", async () => {
      const res = await berthdCommand("config", "default");
      expect(res.code, res.stderr).toBe(0);
      expect(res.stdout).toMatch(/^version = 2$/m);
      expect(res.stdout).toMatch(/^root = "\/var\/lib\/berth"$/m);
      // --root/--state/-a from the harness override the defaults' system paths
      const d = await startBerthd({ config: res.stdout });
      const v = await ctr(d.socket, "version");
      expect(v.code, v.stderr).toBe(0);
      expect(v.stdout).toContain(`Version:  ${BERTH_VERSION}`);
      await writeFile(join(d.dir, "dump-check.toml"), res.stdout);
      const dump = await berthdCommand("-c", join(d.dir, "dump-check.toml"), "config", "dump");
      expect(dump.code, dump.stderr).toBe(0);
      expect(dump.stdout).toMatch(/^version = 2$/m);
    });
  });
});

import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Namespaces } from "@berth/api/services/namespaces/v1";
import { Version } from "@berth/api/services/version/v1";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect } from "node:net";

const here = new URL("..", import.meta.url).pathname;

describe("examples/compose-daemon", () => {
  let dir: string;
  let child: ChildProcess;
  let transport: ReturnType<typeof createGrpcTransport>;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "berth-example-"));
    child = spawn(process.execPath, [join(here, "daemon.mjs"), dir], { stdio: ["ignore", "pipe", "inherit"] });
    await new Promise<void>((resolve, reject) => {
      child.once("exit", (code) => reject(new Error(`example daemon exited with ${code}`)));
      child.stdout?.once("data", () => resolve());
    });
    const socket = join(dir, "sock");
    transport = createGrpcTransport({
      baseUrl: "http://localhost",
      nodeOptions: { createConnection: () => connect(socket) },
    });
  });

  afterAll(async () => {
    if (child && child.exitCode === null) {
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGTERM");
      await exited;
    }
    await rm(dir, { recursive: true, force: true });
  });

  it("serves the composed services", async () => {
    const version = await createClient(Version, transport).version({});
    expect(version.version).toMatch(/^\d+\.\d+\.\d+/);
  });

  it("runs the custom plugin: new namespaces get a creation label", async () => {
    const namespaces = createClient(Namespaces, transport);
    await namespaces.create({ namespace: { name: "team-a", labels: { owner: "me" } } });
    let labels: Record<string, string> = {};
    for (let i = 0; i < 50 && !labels["example.com/created-at"]; i++) {
      await new Promise((r) => setTimeout(r, 20));
      labels = (await namespaces.get({ name: "team-a" })).namespace?.labels ?? {};
    }
    expect(labels.owner).toBe("me");
    expect(new Date(labels["example.com/created-at"] ?? "").getTime()).toBeGreaterThan(Date.now() - 60_000);
  });
});

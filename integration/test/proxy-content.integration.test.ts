/**
 * A content store in another process as a `[proxy_plugins]` entry: one berthd (the "store") serves Content, a
 * second one has its local content store disabled and uses the first through the proxy client. `ctr` against the
 * second sees content that lives in the first.
 */
import { createHash } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { type Berthd, ctr, ctrWith, skipReason, startBerthd, stopAll } from "../src/harness.js";

const reason = skipReason();

describe.skipIf(reason !== undefined)(reason ? `proxy content (skipped: ${reason})` : "proxy content plugin", () => {
  let store: Berthd;
  let front: Berthd;

  beforeAll(async () => {
    store = await startBerthd();
    front = await startBerthd({
      config: [
        "version = 2",
        'disabled_plugins = ["io.containerd.content.v1.content"]',
        "[proxy_plugins.remote]",
        '  type = "content"',
        `  address = ${JSON.stringify(store.socket)}`,
        "",
      ].join("\n"),
    });
  });
  afterAll(stopAll);

  test("plugins ls lists the proxy as a content plugin", async () => {
    const out = await ctr(front.socket, "plugins", "ls");
    expect(out.code).toBe(0);
    expect(out.stdout).toMatch(/io\.containerd\.content\.v1\s+remote\s+-\s+ok/);
    expect(out.stdout).not.toMatch(/io\.containerd\.content\.v1\s+content\s+-\s+ok/);
  });

  test("content ingested through the front is stored by the store daemon and reads back", async () => {
    const file = join(store.dir, "blob"); // removed with the daemon's temp dir
    const data = Buffer.from(`proxied content ${Date.now()}\n`);
    await writeFile(file, data);
    const digest = `sha256:${createHash("sha256").update(data).digest("hex")}`;
    const ingest = await ctrWith(
      front.socket,
      ["content", "ingest", "--expected-digest", digest, "--expected-size", String(data.length), "proxied"],
      { stdinFile: file },
    );
    expect(ingest.stderr).toBe("");
    expect(ingest.code).toBe(0);
    await ctr(front.socket, "content", "label", digest, "containerd.io/gc.root=test");

    const viaFront = await ctr(front.socket, "content", "get", digest);
    expect(viaFront.stdout).toBe(data.toString());
    // the blob lives in the store daemon (same namespace, as the proxy passes the caller's namespace on)
    const inStore = await ctr(store.socket, "content", "ls", "-q");
    expect(inStore.stdout.split("\n")).toContain(digest);
  });

  test("an unknown digest is NotFound through the proxy", async () => {
    const out = await ctr(front.socket, "content", "get", `sha256:${"0".repeat(64)}`);
    expect(out.code).not.toBe(0);
    expect(out.stderr).toContain("not found");
  });
});

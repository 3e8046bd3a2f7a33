/**
 * The garbage collector reports what it removed and how long it took: in the log and as Prometheus metrics.
 */
import { createHash } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { type Berthd, ctr, ctrWith, skipReason, startBerthd, stopAll } from "../src/harness.js";

const reason = skipReason();

/** A free TCP port on 127.0.0.1 (closed again before berthd binds it). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

describe.skipIf(reason !== undefined)(reason ? `gc metrics (skipped: ${reason})` : "gc metrics and log", () => {
  let berthd: Berthd;
  let port: number;

  beforeAll(async () => {
    port = await freePort();
    berthd = await startBerthd({ config: `version = 2\n[metrics]\n  address = "127.0.0.1:${port}"\n` });
  });
  afterAll(stopAll);

  async function metric(name: string, labels = ""): Promise<number | undefined> {
    const text = await (await fetch(`http://127.0.0.1:${port}/v1/metrics`)).text();
    const line = text.split("\n").find((l) => l.startsWith(`${name}${labels} `));
    return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(" ") + 1));
  }

  test("a synchronous lease delete runs a collection that removes an unreferenced blob; metrics and log say so", async () => {
    const file = join(berthd.dir, "gc-blob");
    const data = Buffer.from(`collect me ${Date.now()}\n`);
    await writeFile(file, data);
    const digest = `sha256:${createHash("sha256").update(data).digest("hex")}`;
    const blobsBefore = (await metric("berth_gc_removed_total", '{kind="blob"}')) ?? 0;

    expect((await ctr(berthd.socket, "leases", "create", "--id", "gc-test")).code).toBe(0);
    // ctr 1.6's ingest takes no lease: the blob is unreferenced until the next collection removes it
    const ingest = await ctrWith(
      berthd.socket,
      ["content", "ingest", "--expected-digest", digest, "--expected-size", String(data.length), "gc-ref"],
      { stdinFile: file },
    );
    expect(ingest.code).toBe(0);
    expect((await ctr(berthd.socket, "content", "ls", "-q")).stdout).toContain(digest);

    const rm = await ctr(berthd.socket, "leases", "rm", "--sync", "gc-test");
    expect(rm.code).toBe(0);
    const ls = await ctr(berthd.socket, "content", "ls", "-q");
    expect(ls.stdout).not.toContain(digest);

    expect(await metric("berth_gc_runs_total", '{result="ok"}')).toBeGreaterThan(0);
    expect((await metric("berth_gc_removed_total", '{kind="blob"}')) ?? 0).toBeGreaterThan(blobsBefore);
    expect(await metric("berth_gc_duration_seconds_total")).toBeGreaterThan(0);
    expect(berthd.log()).toMatch(/"msg":"garbage collected"/);
    expect(berthd.log()).toMatch(/"blobsDeleted":[1-9]/);
  });
});

/**
 * Pull faults with the real docker-registry: the registry SIGKILLed in the middle of a pull gives a clear
 * Unavailable error, and the next pull downloads neither the blobs that were complete nor the bytes of the
 * interrupted one again (Range resume of its ingest); a blob whose bytes do not match its digest is rejected
 * with nothing committed, no ingest left and no image registered.
 */
import { randomBytes } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import { afterAll, afterEach, beforeAll, describe, expect, test } from "vitest";
import {
  type Berthd,
  berthWith,
  contentDigests,
  ctrWith,
  normalise,
  startBerthd,
  stopAll,
  stopClients,
  waitUntil,
} from "../src/harness.js";
import {
  type RegistryProxy,
  type Registry,
  registryBlobPath,
  registrySkipReason,
  startProxy,
  startRegistry,
  stopRegistries,
  uploadImage,
} from "./registry-harness.js";

const reason = registrySkipReason();
const MiB = 1 << 20;

describe.skipIf(reason !== undefined)(
  reason ? `registry faults (skipped: ${reason})` : "registry faults: killed registry, corrupt blob",
  () => {
    let berthd: Berthd;
    let registry: Registry;
    let proxy: RegistryProxy;

    beforeAll(async () => {
      [berthd, registry] = await Promise.all([startBerthd(), startRegistry()]);
      proxy = await startProxy(registry.port);
    }, 60_000);
    afterEach(stopClients);
    afterAll(async () => {
      await proxy?.close();
      await stopRegistries();
      await stopAll();
    });

    const ctr = (ns: string, ...args: string[]) => ctrWith(berthd.socket, ["-n", ns, ...args], { timeoutMs: 60_000 });

    test("registry killed mid-pull: clear error; the next pull skips complete blobs and resumes the partial one", async () => {
      const img = await uploadImage(registry.host, "faults/big", "v1", [
        randomBytes(MiB),
        randomBytes(MiB),
        randomBytes(24 * MiB),
      ]);
      const [small1, small2, big] = img.layers as [string, string, string];
      const ns = "faults-kill";
      const remote = `${proxy.host}/faults/big:v1`;
      proxy.throttle(4 * MiB);
      const running = berthWith(berthd.socket, ["-n", ns, "images", "pull", "--no-unpack", "--plain-http", remote], {
        timeoutMs: 60_000,
      });
      // kill once the small layers are in and the big one is partly downloaded
      await waitUntil(
        "small layers committed and the big one partly downloaded",
        async () => {
          const active = await ctr(ns, "content", "active");
          const have = await contentDigests(berthd.socket, ns);
          const ready =
            have.includes(small1) &&
            have.includes(small2) &&
            active.stdout.includes(`layer-${big}`) &&
            proxy.bytes() > 6 * MiB;
          return ready ? true : undefined;
        },
        30_000,
      );
      await registry.kill();
      proxy.dropAll();
      const failed = await running;
      expect(failed.code).toBe(1);
      expect(failed.stderr).toMatch(new RegExp(`berth: .*(${big}|faults/big).*unavailable`));
      expect(failed.stderr.split("\n").filter((l) => l !== "")).toHaveLength(1);

      const have = await contentDigests(berthd.socket, ns);
      expect(have).toEqual(expect.arrayContaining([img.manifest.digest, img.config, small1, small2]));
      expect(have).not.toContain(big);
      const active = normalise((await ctr(ns, "content", "active")).stdout);
      const partial = active.find((l) => l.startsWith(`layer-${big}`));
      expect(partial).toBeDefined();
      expect((await ctr(ns, "images", "ls", "-q")).stdout).toBe("");

      await registry.start();
      proxy.throttle(0);
      proxy.requests.length = 0;
      const pull = await berthWith(berthd.socket, ["-n", ns, "images", "pull", "--no-unpack", "--plain-http", remote], {
        timeoutMs: 60_000,
      });
      expect(pull.code, pull.stderr).toBe(0);
      expect(pull.stdout).toMatch(/fetched 1 blobs .*, 4 already present/);
      const gets = proxy.requests.filter((r) => r.startsWith("GET "));
      for (const d of [small1, small2, img.config]) expect(gets.some((r) => r.includes(d))).toBe(false);
      const bigGet = gets.find((r) => r.includes(`/blobs/${big}`));
      expect(bigGet).toMatch(/\r\nRange: bytes=[1-9][0-9]*-/i);
      expect(await contentDigests(berthd.socket, ns)).toContain(big);
      expect(normalise((await ctr(ns, "images", "ls", "-q")).stdout)).toEqual([remote]);
      expect(normalise((await ctr(ns, "content", "active")).stdout)).toHaveLength(1);
    });

    test("a blob whose content does not match its digest is rejected and nothing of it is committed", async () => {
      const img = await uploadImage(registry.host, "faults/corrupt", "v1", [randomBytes(MiB), randomBytes(256 * 1024)]);
      const bad = img.layers[1] as string;
      const file = registryBlobPath(registry.storage, bad);
      const bytes = await readFile(file);
      bytes[bytes.length >> 1] = (bytes[bytes.length >> 1] ?? 0) ^ 0xff;
      await writeFile(file, bytes);

      const ns = "faults-corrupt";
      // One download at a time: with several, the first failure aborts the others mid-way and their partial
      // ingests stay (for resume, as in containerd), which would make the "no active ingest" check below racy.
      const res = await berthWith(
        berthd.socket,
        [
          "-n",
          ns,
          "images",
          "pull",
          "--no-unpack",
          "--plain-http",
          "--max-concurrent-downloads",
          "1",
          `${registry.host}/faults/corrupt:v1`,
        ],
        { timeoutMs: 60_000 },
      );
      expect(res.code).toBe(1);
      expect(res.stderr).toContain(`blob ${bad}`);
      expect(res.stderr).toMatch(/does not match.*failed precondition/);
      expect(await contentDigests(berthd.socket, ns)).not.toContain(bad);
      expect(normalise((await ctr(ns, "content", "active")).stdout)).toHaveLength(1);
      expect((await ctr(ns, "images", "ls", "-q")).stdout).toBe("");
      // and ctr pulling the same image through berthd is refused by berthd's Content.Write commit too
      const viaCtr = await ctr(ns, "images", "pull", "--plain-http", `${registry.host}/faults/corrupt:v1`);
      expect(viaCtr.code).not.toBe(0);
      expect(viaCtr.stderr).toMatch(/unexpected commit digest|failed precondition/);
      expect(await contentDigests(berthd.socket, ns)).not.toContain(bad);
    });
  },
);

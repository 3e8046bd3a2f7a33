/**
 * `berth images pull` done by berthd's Pull service (berth.services.pull.v1), against the real docker-registry:
 * the daemon resolves, fetches into its store and unpacks; the CLI renders the streamed progress. `--local`
 * keeps the client-side pull. Credentials travel in the request and show in neither output nor the daemon's
 * log (debug level); killing the CLI stops the daemon's download; hostile requests get the right codes.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Pull } from "@berth/api/services/pull/v1";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, afterEach, beforeAll, describe, expect, test } from "vitest";
import { type BuiltArchive, busyboxSkipReason, writeOciArchive } from "../src/busybox.js";
import {
  type Berthd,
  BERTH_BIN,
  berthWith,
  contentDigests,
  ctrWith,
  normalise,
  sleep,
  startBerthd,
  stopAll,
  stopClients,
  tempDir,
  waitUntil,
  withClient,
} from "../src/harness.js";
import {
  type Registry,
  type RegistryProxy,
  registryBlobPath,
  registrySkipReason,
  startProxy,
  startRegistry,
  stopRegistries,
  uploadImage,
} from "./registry-harness.js";

const reason = busyboxSkipReason() ?? registrySkipReason();
const LOCAL = "docker.io/library/busybox:oci";
const USER = "daemon-pull-user";
const SECRET = "dp-S3cret-77qx";
const WRONG = "dp-Wr0ng-19zz";
const MiB = 1 << 20;

/** The gRPC code of a Pull call's failure (the stream is read to its end). */
async function pullCode(
  socket: string,
  request: Parameters<ReturnType<typeof import("@connectrpc/connect").createClient<typeof Pull>>["pull"]>[0],
  namespace: string | null = "daemon-pull-rpc",
): Promise<{ code: Code | "ok"; message: string }> {
  try {
    await withClient(
      socket,
      Pull,
      async (c) => {
        for await (const _ of c.pull(request, { timeoutMs: 30_000 })) {
          // progress
        }
      },
      namespace === null ? {} : { namespace },
    );
    return { code: "ok", message: "" };
  } catch (err) {
    const e = ConnectError.from(err);
    return { code: e.code, message: e.rawMessage };
  }
}

describe.skipIf(reason !== undefined)(
  reason ? `daemon pull (skipped: ${reason})` : "berth images pull through berthd's Pull service",
  () => {
    let berthd: Berthd;
    let registry: Registry;
    let secured: Registry;
    let proxy: RegistryProxy;
    let oci: BuiltArchive;
    let remote: string;
    const outputs: string[] = [];

    beforeAll(async () => {
      let dir: string;
      [berthd, registry, secured, dir] = await Promise.all([
        startBerthd({ args: ["--log-level", "debug"] }),
        startRegistry(),
        startRegistry({ kind: "htpasswd", user: USER, password: SECRET }),
        tempDir(),
      ]);
      proxy = await startProxy(registry.port);
      oci = await writeOciArchive(join(dir, "busybox-oci.tar"), LOCAL);
      remote = `${registry.host}/library/busybox:latest`;
      const imp = await berth("dp-src", "images", "import", "--all-platforms", "--no-unpack", oci.path);
      expect(imp.code, imp.stderr).toBe(0);
      for (const [reg, extra] of [
        [registry, []],
        [secured, ["--user", `${USER}:${SECRET}`]],
      ] as const) {
        const push = await berth(
          "dp-src",
          "images",
          "push",
          "--plain-http",
          ...extra,
          `${reg.host}/library/busybox:latest`,
          LOCAL,
        );
        expect(push.code, push.stderr).toBe(0);
      }
    }, 90_000);
    afterEach(stopClients);
    afterAll(async () => {
      await proxy?.close();
      await stopRegistries();
      await stopAll();
    });

    async function berth(ns: string, ...args: string[]) {
      const r = await berthWith(berthd.socket, ["-n", ns, ...args], { timeoutMs: 120_000 });
      outputs.push(r.stdout, r.stderr);
      return r;
    }
    const ctr = (ns: string, ...args: string[]) => ctrWith(berthd.socket, ["-n", ns, ...args], { timeoutMs: 60_000 });
    /** Daemon log lines (pino JSON) of pulls it ran for `ref` since `from`. */
    const daemonPulls = (ref: string, from: number) =>
      berthd
        .log()
        .slice(from)
        .split("\n")
        .filter((l) => l.includes('"pulling image"') && l.includes(JSON.stringify(ref)));

    test("the daemon pulls and unpacks; the image runs; --json reports the same; a second pull fetches nothing", async () => {
      const ns = "dp-pull";
      const mark = berthd.log().length;
      const pull = await berth(ns, "images", "pull", "--plain-http", remote);
      expect(pull.code, pull.stderr).toBe(0);
      expect(pull.stdout).toContain(`${remote}: resolved ${oci.target}`);
      // (the blobs are on disk already from the import in dp-src: shared across namespaces, nothing downloads)
      expect(pull.stdout).toMatch(/fetched 4 blobs \(.*\), 0 already present/);
      expect(pull.stdout).toMatch(
        /unpacked sha256:[0-9a-f]{64} into overlayfs: sha256:[0-9a-f]{64} \(1 layers applied\)/,
      );
      // berthd ran it (not the CLI through Content.Write)
      expect(daemonPulls(remote, mark)).toHaveLength(1);
      const check = await ctr(ns, "images", "check", `name==${remote}`);
      expect(check.stdout).toContain("complete");
      // the pull's lease is gone and no ingest is left
      expect(normalise((await ctr(ns, "leases", "ls")).stdout)).toHaveLength(1);
      expect(normalise((await ctr(ns, "content", "active")).stdout)).toHaveLength(1);

      const fifoDir = await tempDir("berth-e2e-fifo-");
      const run = await berth(ns, "run", "--rm", "--fifo-dir", fifoDir, remote, "dp-hi", "sh", "-c", "echo hi");
      expect(run.stderr).toBe("");
      expect(run.stdout).toBe("hi\n");

      const json = await berth(ns, "--json", "images", "pull", "--plain-http", remote);
      expect(json.code, json.stderr).toBe(0);
      const doc = JSON.parse(json.stdout) as Record<string, unknown>;
      expect(doc).toMatchObject({ name: remote, digest: oci.target, fetched: 0, existing: 4, bytes: 0 });
      expect(doc.unpacked).toMatchObject({ applied: 0, chainID: expect.stringMatching(/^sha256:/) });
    });

    test("--local pulls client-side (the daemon runs no pull) with the same output", async () => {
      const ns = "dp-local";
      const mark = berthd.log().length;
      const pull = await berth(ns, "images", "pull", "--local", "--plain-http", remote);
      expect(pull.code, pull.stderr).toBe(0);
      expect(pull.stdout).toContain(`${remote}: resolved ${oci.target}`);
      expect(pull.stdout).toMatch(/fetched 4 blobs/);
      expect(pull.stdout).toContain("(1 layers applied)");
      expect(daemonPulls(remote, mark)).toHaveLength(0);
      expect((await contentDigests(berthd.socket, ns)).sort()).toEqual(
        (await contentDigests(berthd.socket, "dp-pull")).sort(),
      );
    });

    test("credentials: right ones pull in the daemon, wrong ones are Unauthenticated; the secret is never shown", async () => {
      const ref = `${secured.host}/library/busybox:latest`;
      const none = await berth("dp-auth", "images", "pull", "--plain-http", ref);
      expect(none.code).toBe(1);
      expect(none.stderr).toMatch(/^berth: .*unauthenticated/);
      const wrong = await berth("dp-auth", "images", "pull", "--plain-http", "--user", `${USER}:${WRONG}`, ref);
      expect(wrong.code).toBe(1);
      expect(wrong.stderr).toMatch(/^berth: .*unauthenticated/);
      expect(normalise((await ctr("dp-auth", "images", "ls", "-q")).stdout)).toEqual([]);
      // a failure before any download leaves no lease behind
      expect(normalise((await ctr("dp-auth", "leases", "ls")).stdout)).toHaveLength(1);
      const rpc = await pullCode(berthd.socket, {
        reference: ref,
        plainHttp: true,
        credentials: [{ host: secured.host, username: USER, secret: WRONG }],
      });
      expect(rpc.code).toBe(Code.Unauthenticated);

      const mark = berthd.log().length;
      const right = await berth("dp-auth", "images", "pull", "--plain-http", "--user", `${USER}:${SECRET}`, ref);
      expect(right.code, right.stderr).toBe(0);
      expect(right.stdout).toContain("(1 layers applied)");
      expect(daemonPulls(ref, mark)).toHaveLength(1);
      // debug level logs every call: neither password may appear, nor in any output
      for (const text of [berthd.log(), ...outputs]) {
        expect(text).not.toContain(SECRET);
        expect(text).not.toContain(WRONG);
        expect(text).not.toContain(Buffer.from(`${USER}:${SECRET}`).toString("base64"));
      }
    });

    test("killing the CLI mid-pull stops the daemon's download; the next pull resumes", async () => {
      const img = await uploadImage(registry.host, "dp/big", "v1", [randomBytes(MiB), randomBytes(24 * MiB)]);
      const big = img.layers[1] as string;
      const ns = "dp-kill";
      const ref = `${proxy.host}/dp/big:v1`;
      proxy.throttle(2 * MiB);
      const child = spawn(
        process.execPath,
        [BERTH_BIN, "-a", berthd.socket, "-n", ns, "images", "pull", "--no-unpack", "--plain-http", ref],
        { stdio: "ignore" },
      );
      try {
        await waitUntil(
          "the big layer partly downloaded",
          async () => {
            const active = await ctr(ns, "content", "active");
            return active.stdout.includes(`layer-${big}`) && proxy.bytes() > 4 * MiB ? true : undefined;
          },
          30_000,
        );
      } finally {
        child.kill("SIGKILL");
      }
      await new Promise((r) => child.once("exit", r));
      // the daemon notices the call ended and stops reading from the registry
      await sleep(1500);
      const sizeOf = async () => {
        const row = normalise((await ctr(ns, "content", "active")).stdout).find((l) => l.startsWith(`layer-${big}`));
        return row?.split(" ")[1];
      };
      const before = { bytes: proxy.bytes(), size: await sizeOf() };
      await sleep(2000);
      expect(await sizeOf()).toBe(before.size);
      expect(proxy.bytes()).toBe(before.bytes);
      expect(before.bytes).toBeLessThan(20 * MiB);
      expect(berthd.log()).toMatch(/"pull failed"/);
      expect(normalise((await ctr(ns, "images", "ls", "-q")).stdout)).toEqual([]);

      proxy.throttle(0);
      proxy.requests.length = 0;
      const again = await berth(ns, "images", "pull", "--no-unpack", "--plain-http", ref);
      expect(again.code, again.stderr).toBe(0);
      expect(again.stdout).toMatch(/fetched 1 blobs .*, 3 already present/);
      const bigGet = proxy.requests.find((r) => r.startsWith("GET ") && r.includes(`/blobs/${big}`));
      expect(bigGet).toMatch(/\r\nRange: bytes=[1-9][0-9]*-/i);
    });

    test("a corrupt blob is FailedPrecondition from the daemon, nothing of it committed, no image", async () => {
      const img = await uploadImage(registry.host, "dp/corrupt", "v1", [randomBytes(256 * 1024)]);
      const bad = img.layers[0] as string;
      const file = registryBlobPath(registry.storage, bad);
      const bytes = await readFile(file);
      bytes[bytes.length >> 1] = (bytes[bytes.length >> 1] ?? 0) ^ 0xff;
      await writeFile(file, bytes);
      const ref = `${registry.host}/dp/corrupt:v1`;
      const r = await pullCode(berthd.socket, { reference: ref, plainHttp: true, unpack: true }, "dp-corrupt");
      expect(r.code).toBe(Code.FailedPrecondition);
      expect(r.message).toContain(bad);
      expect(await contentDigests(berthd.socket, "dp-corrupt")).not.toContain(bad);
      expect(normalise((await ctr("dp-corrupt", "content", "active")).stdout)).toHaveLength(1);
      expect(normalise((await ctr("dp-corrupt", "images", "ls", "-q")).stdout)).toEqual([]);
      const cli = await berth("dp-corrupt", "images", "pull", "--plain-http", ref);
      expect(cli.code).toBe(1);
      expect(cli.stderr).toMatch(/^berth: blob .*does not match.*failed precondition/);
    });

    test("hostile or malformed requests get the right codes and register nothing", async () => {
      const s = berthd.socket;
      expect((await pullCode(s, { reference: "" })).code).toBe(Code.InvalidArgument);
      expect((await pullCode(s, { reference: "UPPER/Case::bad" })).code).toBe(Code.InvalidArgument);
      const missingDir = await pullCode(s, { reference: remote, plainHttp: true, hostsDir: "/nonexistent/../certs.d" });
      expect(missingDir.code).toBe(Code.InvalidArgument);
      expect(missingDir.message).toContain("/nonexistent/../certs.d");
      // a traversal in hosts_dir is just a path: an existing directory without hosts.toml changes nothing
      const dir = await tempDir("berth-e2e-hosts-");
      await mkdir(join(dir, "sub"));
      const traversal = await pullCode(s, { reference: remote, plainHttp: true, hostsDir: join(dir, "sub", "..") });
      expect(traversal.code).toBe("ok");
      const creds = Array.from({ length: 10_000 }, (_, i) => ({ host: `h${i}.example`, username: "u", secret: "p" }));
      expect((await pullCode(s, { reference: remote, plainHttp: true, credentials: creds })).code).toBe(
        Code.InvalidArgument,
      );
      expect(
        (await pullCode(s, { reference: remote, credentials: [{ host: "../x", username: "u", secret: "p" }] })).code,
      ).toBe(Code.InvalidArgument);
      expect((await pullCode(s, { reference: remote, plainHttp: true }, null)).code).toBe(Code.FailedPrecondition);
      expect((await pullCode(s, { reference: remote, plainHttp: true }, "bad/ns")).code).toBe(Code.InvalidArgument);
      expect((await pullCode(s, { reference: `${registry.host}/library/busybox:nope`, plainHttp: true })).code).toBe(
        Code.NotFound,
      );
      expect((await pullCode(s, { reference: remote, plainHttp: true, platform: "not/a/plat/form" })).code).toBe(
        Code.InvalidArgument,
      );
      expect((await pullCode(s, { reference: remote, plainHttp: true, unpack: true, snapshotter: "nope" })).code).toBe(
        Code.NotFound,
      );
      expect(normalise((await ctr("daemon-pull-rpc", "images", "ls", "-q")).stdout)).toEqual([remote]);
    });
  },
);

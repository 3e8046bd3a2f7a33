/**
 * Registry auth with the real docker-registry: htpasswd basic auth (credentials from --user and from a docker
 * config.json) and the bearer token flow against a token server run by the test. Right credentials pull and
 * push; wrong or missing ones fail as Unauthenticated; the secret never shows in output or berthd's log.
 */
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, test } from "vitest";
import { type BuiltArchive, busyboxSkipReason, writeOciArchive } from "../src/busybox.js";
import { type Berthd, berthWith, normalise, startBerthd, stopAll, stopClients, tempDir } from "../src/harness.js";
import {
  type Registry,
  type TokenServer,
  registrySkipReason,
  startRegistry,
  startTokenServer,
  stopRegistries,
} from "./registry-harness.js";

const reason = busyboxSkipReason() ?? registrySkipReason();
const LOCAL = "docker.io/library/busybox:oci";
const USER = "berth-user";
const SECRET = "s3cret-Pa55-zq81";
const WRONG = "wrong-Pa55-xk22";

describe.skipIf(reason !== undefined)(
  reason ? `registry auth (skipped: ${reason})` : "registry auth: htpasswd and bearer tokens",
  () => {
    let berthd: Berthd;
    let dir: string;
    let oci: BuiltArchive;
    let basic: Registry;
    let tokens: TokenServer;
    let tokenRegistry: Registry;
    const outputs: string[] = [];

    beforeAll(async () => {
      [berthd, dir, tokens] = await Promise.all([startBerthd(), tempDir(), startTokenServer(USER, SECRET)]);
      [basic, tokenRegistry] = await Promise.all([
        startRegistry({ kind: "htpasswd", user: USER, password: SECRET }),
        startRegistry({
          kind: "token",
          realm: tokens.realm,
          service: tokens.service,
          issuer: tokens.issuer,
          certPath: tokens.certPath,
        }),
      ]);
      oci = await writeOciArchive(join(dir, "busybox-oci.tar"), LOCAL);
      const imp = await berth("auth-src", "images", "import", "--all-platforms", "--no-unpack", oci.path);
      expect(imp.code, imp.stderr).toBe(0);
    }, 60_000);
    afterEach(stopClients);
    afterAll(async () => {
      await tokens?.close();
      await stopRegistries();
      await stopAll();
    });

    async function berth(ns: string, ...args: string[]) {
      const r = await berthWith(berthd.socket, ["-n", ns, ...args], { timeoutMs: 120_000 });
      outputs.push(r.stdout, r.stderr);
      return r;
    }

    for (const kind of ["basic", "token"] as const) {
      const reg = () => (kind === "basic" ? basic : tokenRegistry);

      test(`${kind}: push and pull with the right --user; wrong or no credentials are Unauthenticated`, async () => {
        const remote = `${reg().host}/team/busybox:v1`;
        const noCreds = await berth("auth-src", "images", "push", "--plain-http", remote, LOCAL);
        expect(noCreds.code).toBe(1);
        expect(noCreds.stderr).toMatch(/unauthenticated/);
        const wrong = await berth(
          "auth-src",
          "images",
          "push",
          "--plain-http",
          "--user",
          `${USER}:${WRONG}`,
          remote,
          LOCAL,
        );
        expect(wrong.code).toBe(1);
        expect(wrong.stderr).toMatch(/unauthenticated/);

        const push = await berth(
          "auth-src",
          "images",
          "push",
          "--plain-http",
          "--user",
          `${USER}:${SECRET}`,
          remote,
          LOCAL,
        );
        expect(push.code, push.stderr).toBe(0);
        expect(push.stdout).toContain(`pushed ${oci.target}`);

        const ns = `auth-${kind}`;
        const denied = await berth(
          ns,
          "images",
          "pull",
          "--no-unpack",
          "--plain-http",
          "--user",
          `${USER}:${WRONG}`,
          remote,
        );
        expect(denied.code).toBe(1);
        expect(denied.stderr).toMatch(/unauthenticated/);
        const anon = await berth(ns, "images", "pull", "--no-unpack", "--plain-http", remote);
        expect(anon.code).toBe(1);
        expect(anon.stderr).toMatch(/unauthenticated/);
        expect((await berth(ns, "images", "ls", "-q")).stdout).toBe("");

        const pull = await berth(
          ns,
          "images",
          "pull",
          "--no-unpack",
          "--plain-http",
          "--user",
          `${USER}:${SECRET}`,
          remote,
        );
        expect(pull.code, pull.stderr).toBe(0);
        expect(pull.stdout).toContain(`resolved ${oci.target}`);
        expect(normalise((await berth(ns, "images", "ls", "-q")).stdout)).toEqual([remote]);
      });

      test(`${kind}: credentials from a docker config.json (DOCKER_CONFIG)`, async () => {
        const remote = `${reg().host}/team/busybox:v1`;
        const cfgDir = join(dir, `docker-${kind}`);
        await mkdir(cfgDir, { recursive: true });
        const auth = Buffer.from(`${USER}:${SECRET}`).toString("base64");
        await writeFile(join(cfgDir, "config.json"), JSON.stringify({ auths: { [reg().host]: { auth } } }));
        const ns = `auth-cfg-${kind}`;
        const saved = process.env.DOCKER_CONFIG;
        process.env.DOCKER_CONFIG = cfgDir;
        try {
          const pull = await berth(ns, "images", "fetch", "--plain-http", remote);
          expect(pull.code, pull.stderr).toBe(0);
          expect(pull.stdout).toContain(`resolved ${oci.target}`);
        } finally {
          if (saved === undefined) delete process.env.DOCKER_CONFIG;
          else process.env.DOCKER_CONFIG = saved;
        }
      });
    }

    test("the token server was asked with the right scopes, as the right user", () => {
      const ok = tokens.requests.filter((r) => r.user === USER);
      expect(ok.some((r) => r.scope.includes("repository:team/busybox:pull,push"))).toBe(true);
      expect(ok.some((r) => r.scope === "repository:team/busybox:pull")).toBe(true);
    });

    test("credentials never appear in berth's output or in berthd's log", () => {
      const basicHeader = Buffer.from(`${USER}:${SECRET}`).toString("base64");
      for (const text of [...outputs, berthd.log()]) {
        expect(text).not.toContain(SECRET);
        expect(text).not.toContain(basicHeader);
        expect(text).not.toContain(WRONG);
      }
    });
  },
);

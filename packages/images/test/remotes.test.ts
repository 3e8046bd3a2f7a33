import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import http from "node:http";
import https from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { errorKind } from "@berth/errdefs";
import { type Descriptor, MediaTypeImageLayerGzip, MediaTypeImageManifest, digestOf } from "@berth/oci-spec";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  configureHosts,
  createResolver,
  dockerConfigCredentials,
  fetchBlob,
  isLocalhost,
  parseChallenges,
  parseHostsToml,
  parseReference,
  refKey,
  staticCredentials,
} from "../src/remotes/index.js";
import { type TempStore, ctx, tempStore } from "./helpers.js";

describe("parseChallenges", () => {
  it("reads bearer params, quoted and with commas inside quotes", () => {
    expect(
      parseChallenges(
        'Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push"',
      ),
    ).toEqual([
      {
        scheme: "bearer",
        params: { realm: "https://auth.example/token", service: "registry.example", scope: "repository:a/b:pull,push" },
      },
    ]);
  });
  it("reads basic and several headers", () => {
    expect(parseChallenges(['Basic realm="x"', "Bearer realm=y"])).toEqual([
      { scheme: "basic", params: { realm: "x" } },
      { scheme: "bearer", params: { realm: "y" } },
    ]);
  });
  it("gives nothing for an absent or garbage header", () => {
    expect(parseChallenges(undefined)).toEqual([]);
    expect(parseChallenges("=== ,,")).toEqual([]);
  });
});

describe("hosts", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "berth-hosts-"));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it("defaults: docker.io → registry-1.docker.io over https; localhost over http", async () => {
    const [hub] = await configureHosts("docker.io");
    expect(hub).toMatchObject({ scheme: "https", host: "registry-1.docker.io", path: "/v2" });
    const [local] = await configureHosts("127.0.0.1:5000");
    expect(local).toMatchObject({ scheme: "http", host: "127.0.0.1:5000" });
    const [plain] = await configureHosts("registry.example", { plainHttp: true });
    expect(plain?.scheme).toBe("http");
    expect(isLocalhost("localhost:80")).toBe(true);
    expect(isLocalhost("[::1]:5000")).toBe(true);
    expect(isLocalhost("10.0.0.1:5000")).toBe(false);
  });

  it("reads certs.d/<host>/hosts.toml: mirrors first, capabilities, relative ca, override_path, headers", async () => {
    await mkdir(join(dir, "registry.example"));
    await writeFile(join(dir, "registry.example", "ca.crt"), "PEM");
    await writeFile(
      join(dir, "registry.example", "hosts.toml"),
      [
        'server = "https://registry.example"',
        '[host."https://mirror.example/base"]',
        '  capabilities = ["pull", "resolve"]',
        '  ca = "ca.crt"',
        "  override_path = true",
        '[host."http://plain.example:5000"]',
        "  skip_verify = true",
        '  [host."http://plain.example:5000".header]',
        '    x-custom = "1"',
      ].join("\n"),
    );
    const hosts = await configureHosts("registry.example", { hostsDir: dir });
    expect(hosts.map((h) => `${h.scheme}://${h.host}${h.path}`)).toEqual([
      "https://mirror.example/base",
      "http://plain.example:5000/v2",
      "https://registry.example/v2",
    ]);
    expect([...(hosts[0]?.capabilities ?? [])]).toEqual(["pull", "resolve"]);
    expect(hosts[0]?.tls?.ca?.[0]?.toString()).toBe("PEM");
    expect(hosts[1]?.tls?.insecureSkipVerify).toBe(true);
    expect(hosts[1]?.headers).toEqual({ "x-custom": "1" });
    expect([...(hosts[2]?.capabilities ?? [])].sort()).toEqual(["pull", "push", "resolve"]);
  });

  it("rejects bad files with InvalidArgument", async () => {
    await expect(parseHostsToml("server = [", "x", dir)).rejects.toSatisfy((e) => errorKind(e) === "InvalidArgument");
    await expect(
      parseHostsToml('[host."ftp://x"]\n', "x", dir).catch((e: unknown) => Promise.reject(e)),
    ).rejects.toSatisfy((e) => errorKind(e) === "InvalidArgument");
    await expect(parseHostsToml('[host."https://x"]\ncapabilities = ["delete"]\n', "x", dir)).rejects.toSatisfy(
      (e) => errorKind(e) === "InvalidArgument",
    );
  });
});

describe("credentials", () => {
  it("reads auth, username/password and identity tokens from a docker config.json", async () => {
    const dir = await mkdtemp(join(tmpdir(), "berth-dockercfg-"));
    try {
      const file = join(dir, "config.json");
      await writeFile(
        file,
        JSON.stringify({
          auths: {
            "https://index.docker.io/v1/": { auth: Buffer.from("hub:pw:with:colons").toString("base64") },
            "r.example:5000": { username: "u", password: "p" },
            "https://t.example": { identitytoken: "tok" },
          },
        }),
      );
      const creds = dockerConfigCredentials(file);
      expect(await creds("registry-1.docker.io")).toEqual({ username: "hub", secret: "pw:with:colons" });
      expect(await creds("r.example:5000")).toEqual({ username: "u", secret: "p" });
      // an identity token is a refresh token: no username (as containerd's and nerdctl's resolvers take it)
      expect(await creds("t.example")).toEqual({ username: "", secret: "tok" });
      expect(await creds("other.example")).toBeUndefined();
      expect(await dockerConfigCredentials(join(dir, "missing.json"))("x")).toBeUndefined();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
  it("asks the credential helper the config names (credHelpers before credsStore), as docker does", async () => {
    const dir = await mkdtemp(join(tmpdir(), "berth-credhelper-"));
    const path = process.env.PATH;
    try {
      // docker-credential-<name> get: the server on stdin, JSON out; "credentials not found" for others
      for (const [name, user] of [
        ["pass", "from-pass"],
        ["store", "from-store"],
      ]) {
        const script = join(dir, `docker-credential-${name}`);
        await writeFile(
          script,
          `#!/bin/sh
[ "$1" = get ] || exit 2
read -r server
case "$server" in
  r.example:5000|https://index.docker.io/v1/) printf '{"ServerURL":"%s","Username":"${user}","Secret":"s3cret"}' "$server" ;;
  t.example) printf '{"ServerURL":"t.example","Username":"<token>","Secret":"refresh"}' ;;
  *) echo "credentials not found in native keychain"; exit 1 ;;
esac
`,
          { mode: 0o755 },
        );
      }
      process.env.PATH = `${dir}:${path}`;
      const file = join(dir, "config.json");
      await writeFile(
        file,
        JSON.stringify({
          auths: { "r.example:5000": {}, "other.example": { auth: Buffer.from("a:b").toString("base64") } },
          credHelpers: { "r.example:5000": "pass", "t.example": "pass" },
          credsStore: "store",
        }),
      );
      const creds = dockerConfigCredentials(file);
      expect(await creds("r.example:5000")).toEqual({ username: "from-pass", secret: "s3cret" });
      expect(await creds("registry-1.docker.io")).toEqual({ username: "from-store", secret: "s3cret" });
      expect(await creds("t.example")).toEqual({ username: "", secret: "refresh" });
      // the store knows nothing of it: anonymous (the file's own entry is not used once a store is set)
      expect(await creds("other.example")).toBeUndefined();
      await writeFile(file, JSON.stringify({ credsStore: "missing-helper" }));
      await expect(dockerConfigCredentials(file)("r.example:5000")).rejects.toSatisfy(
        (e) => errorKind(e) === "Unavailable",
      );
      await writeFile(file, JSON.stringify({ credsStore: "../../bin/sh" }));
      await expect(dockerConfigCredentials(file)("r.example:5000")).rejects.toSatisfy(
        (e) => errorKind(e) === "Unavailable",
      );
    } finally {
      process.env.PATH = path;
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("--user splits at the first colon", async () => {
    expect(await staticCredentials("a:b:c")("h")).toEqual({ username: "a", secret: "b:c" });
  });
});

describe("references and ingest refs", () => {
  it("normalises docker.io and adds latest", () => {
    expect(parseReference("busybox")).toEqual({ domain: "docker.io", path: "library/busybox", tag: "latest" });
    expect(parseReference("127.0.0.1:5000/a/b@sha256:" + "0".repeat(64))).toMatchObject({
      domain: "127.0.0.1:5000",
      path: "a/b",
    });
    expect(() => parseReference("UPPER/Case")).toThrow(/invalid reference/);
  });
  it("names ingests by kind and digest", () => {
    const d = digestOf("x");
    expect(refKey({ mediaType: MediaTypeImageManifest, digest: d, size: 1 })).toBe(`manifest-${d}`);
    expect(refKey({ mediaType: MediaTypeImageLayerGzip, digest: d, size: 1 })).toBe(`layer-${d}`);
  });
});

/** A minimal in-process registry: one repository, bearer-token auth, blobs with Range support. */
function fakeRegistry(
  blobs: Map<string, Buffer>,
  opts: { token: string; user: string; secret: string; tamper?: boolean; oauth?: boolean },
) {
  const seen: string[] = [];
  const forms: URLSearchParams[] = [];
  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url ?? "/", "http://x");
    seen.push(`${req.method} ${url.pathname}${req.headers.range ? ` ${req.headers.range}` : ""}`);
    const origin = `http://${req.headers.host}`;
    if (url.pathname === "/token" && req.method === "POST") {
      // OAuth2 token endpoint (only when the registry offers it; else 404 as GCR does)
      let text = "";
      for await (const chunk of req) text += chunk;
      const form = new URLSearchParams(text);
      forms.push(form);
      const ok =
        (form.get("grant_type") === "password" &&
          form.get("username") === opts.user &&
          form.get("password") === opts.secret) ||
        (form.get("grant_type") === "refresh_token" && opts.user === "" && form.get("refresh_token") === opts.secret);
      if (!opts.oauth) res.writeHead(404).end();
      else if (!ok) res.writeHead(401).end();
      else res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ access_token: opts.token }));
      return;
    }
    if (url.pathname === "/token") {
      if (opts.oauth) {
        res.writeHead(405).end(); // a POST-only token endpoint
        return;
      }
      const want = `Basic ${Buffer.from(`${opts.user}:${opts.secret}`).toString("base64")}`;
      if (req.headers.authorization !== want) {
        res.writeHead(401).end();
        return;
      }
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ token: opts.token }));
      return;
    }
    if (req.headers.authorization !== `Bearer ${opts.token}`) {
      res
        .writeHead(401, {
          "www-authenticate": `Bearer realm="${origin}/token",service="fake",scope="repository:r/app:pull"`,
        })
        .end();
      return;
    }
    const m = /^\/v2\/r\/app\/blobs\/(sha256:[0-9a-f]{64})$/.exec(url.pathname);
    const data = m ? blobs.get(m[1] as string) : undefined;
    if (!data) {
      res.writeHead(404).end();
      return;
    }
    let body = opts.tamper ? Buffer.from(data.map((b) => b ^ 1)) : data;
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? "");
    if (range) {
      body = body.subarray(Number(range[1]));
      res.writeHead(206, { "content-length": body.length });
    } else res.writeHead(200, { "content-length": body.length });
    res.end(body);
  });
  return {
    seen,
    forms,
    listen: () =>
      new Promise<string>((resolve) =>
        server.listen(0, "127.0.0.1", () => resolve(`127.0.0.1:${(server.address() as AddressInfo).port}`)),
      ),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

describe("fetchBlob against an in-process registry with bearer auth", () => {
  let tmp: TempStore;
  beforeEach(async () => {
    tmp = await tempStore();
  });
  afterEach(() => tmp.cleanup());

  const blob = Buffer.alloc(300_000, 7);
  const desc: Descriptor = { mediaType: MediaTypeImageLayerGzip, digest: digestOf(blob), size: blob.length };

  it("gets a token, resumes a partial ingest with Range, labels the source", async () => {
    const reg = fakeRegistry(new Map([[desc.digest, blob]]), { token: "t0k", user: "u", secret: "s" });
    const host = await reg.listen();
    try {
      // a previous, interrupted attempt left 1000 bytes in the ingest
      const w = await tmp.store.writer(ctx, { ref: refKey(desc), desc });
      await w.write(blob.subarray(0, 1000));
      await w.close();
      const resolver = createResolver({ credentials: staticCredentials("u:s") });
      const repo = await resolver.repository(`${host}/r/app:latest`);
      expect(await fetchBlob(ctx, tmp.store, repo, desc)).toBe("fetched");
      expect(reg.seen).toContain(`GET /v2/r/app/blobs/${desc.digest} bytes=1000-`);
      expect(reg.seen.filter((s) => s.startsWith("GET /token"))).toHaveLength(1);
      const info = await tmp.store.info(ctx, desc.digest);
      expect(info.labels[`containerd.io/distribution.source.${host}`]).toBe("r/app");
      // a second fetch does not touch the registry
      const before = reg.seen.length;
      expect(await fetchBlob(ctx, tmp.store, repo, desc)).toBe("exists");
      expect(reg.seen.length).toBe(before);
    } finally {
      await reg.close();
    }
  });

  it("asks for the token with an OAuth2 POST first (password grant, containerd's client id)", async () => {
    const reg = fakeRegistry(new Map([[desc.digest, blob]]), { token: "t0k", user: "u", secret: "s", oauth: true });
    const host = await reg.listen();
    try {
      const repo = await createResolver({ credentials: staticCredentials("u:s") }).repository(`${host}/r/app`);
      expect(await fetchBlob(ctx, tmp.store, repo, desc)).toBe("fetched");
      expect(reg.seen.filter((s) => s.startsWith("GET /token"))).toEqual([]);
      const form = reg.forms[0];
      const wrong = await createResolver({ credentials: staticCredentials("u:nope") }).repository(`${host}/r/app`);
      await tmp.store.delete(ctx, desc.digest);
      await expect(fetchBlob(ctx, tmp.store, wrong, desc)).rejects.toSatisfy((e) => errorKind(e) === "Unauthenticated");
      expect(Object.fromEntries(form ?? [])).toEqual({
        scope: "repository:r/app:pull",
        service: "fake",
        client_id: "containerd-client",
        grant_type: "password",
        username: "u",
        password: "s",
      });
    } finally {
      await reg.close();
    }
  });

  it("an identity token is sent as a refresh-token grant; a POST the server refuses falls back to the GET", async () => {
    const reg = fakeRegistry(new Map([[desc.digest, blob]]), { token: "t0k", user: "", secret: "rt", oauth: true });
    const host = await reg.listen();
    try {
      const repo = await createResolver({ credentials: () => ({ username: "", secret: "rt" }) }).repository(
        `${host}/r/app`,
      );
      expect(await fetchBlob(ctx, tmp.store, repo, desc)).toBe("fetched");
      expect(reg.forms[0]?.get("grant_type")).toBe("refresh_token");
      expect(reg.forms[0]?.get("refresh_token")).toBe("rt");
    } finally {
      await reg.close();
    }
    // a registry without the OAuth endpoint (404 on POST): the docker GET with basic credentials is used
    const plain = fakeRegistry(new Map([[desc.digest, blob]]), { token: "t1k", user: "u", secret: "s" });
    const plainHost = await plain.listen();
    try {
      await tmp.store.delete(ctx, desc.digest);
      const repo = await createResolver({ credentials: staticCredentials("u:s") }).repository(`${plainHost}/r/app`);
      expect(await fetchBlob(ctx, tmp.store, repo, desc)).toBe("fetched");
      expect(plain.seen.filter((s) => s.includes("/token"))).toEqual(["POST /token", "GET /token"]);
    } finally {
      await plain.close();
    }
  });

  it("wrong credentials are Unauthenticated; tampered bytes are FailedPrecondition with nothing kept", async () => {
    const reg = fakeRegistry(new Map([[desc.digest, blob]]), { token: "t0k", user: "u", secret: "s", tamper: true });
    const host = await reg.listen();
    try {
      const wrong = await createResolver({ credentials: staticCredentials("u:nope") }).repository(`${host}/r/app`);
      await expect(fetchBlob(ctx, tmp.store, wrong, desc)).rejects.toSatisfy((e) => errorKind(e) === "Unauthenticated");
      const right = await createResolver({ credentials: staticCredentials("u:s") }).repository(`${host}/r/app`);
      const err = await fetchBlob(ctx, tmp.store, right, desc).catch((e: unknown) => e);
      expect(errorKind(err)).toBe("FailedPrecondition");
      expect(String(err)).not.toContain(":s@");
      await expect(tmp.store.info(ctx, desc.digest)).rejects.toSatisfy((e) => errorKind(e) === "NotFound");
      expect(await tmp.store.listStatuses(ctx)).toEqual([]);
    } finally {
      await reg.close();
    }
  });
});

describe("TLS from hosts.toml: ca and skip_verify", () => {
  const hasOpenssl = existsSync("/usr/bin/openssl");
  it.skipIf(!hasOpenssl)(
    "trusts the configured CA, refuses an unknown certificate, skip_verify accepts it",
    async () => {
      const dir = await mkdtemp(join(tmpdir(), "berth-tls-"));
      const server = https.createServer();
      try {
        execFileSync(
          "openssl",
          [
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            join(dir, "key.pem"),
            "-out",
            join(dir, "ca.pem"),
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
          ],
          { stdio: "ignore" },
        );
        server.setSecureContext({
          key: await readFile(join(dir, "key.pem")),
          cert: await readFile(join(dir, "ca.pem")),
        });
        server.on("request", (_req, res) => {
          res.writeHead(200, {
            "content-type": MediaTypeImageManifest,
            "docker-content-digest": `sha256:${"a".repeat(64)}`,
            "content-length": "100",
          });
          res.end();
        });
        await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
        const host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
        const hostsDir = join(dir, "certs.d");
        await mkdir(join(hostsDir, host), { recursive: true });
        const toml = (extra: string) =>
          writeFile(join(hostsDir, host, "hosts.toml"), `server = "https://${host}"\n${extra}`);

        await toml(`ca = "${join(dir, "ca.pem")}"\n`);
        const ok = await createResolver({ hostsDir }).resolve(`${host}/a/b:v1`);
        expect(ok.desc).toMatchObject({ digest: `sha256:${"a".repeat(64)}`, size: 100 });

        await toml("");
        const err = await createResolver({ hostsDir })
          .resolve(`${host}/a/b:v2`)
          .catch((e: unknown) => e);
        expect(errorKind(err)).toBe("Unavailable");
        expect(String(err)).toMatch(/SELF_SIGNED|UNABLE_TO_VERIFY/);

        await toml("skip_verify = true\n");
        const skipped = await createResolver({ hostsDir }).resolve(`${host}/a/b:v3`);
        expect(skipped.desc.size).toBe(100);
      } finally {
        server.close();
        await rm(dir, { recursive: true, force: true });
      }
    },
  );
});

/**
 * Debian's docker-registry (distribution 2.8) for the registry tests: started on 127.0.0.1:<free port> with a
 * private config and storage dir, stopped by PID; optionally with htpasswd basic auth or token auth backed by
 * a tiny token server run here (RS256 JWTs with an x5c self-signed certificate the registry trusts).
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { createHash, createSign, randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import http from "node:http";
import net, { type AddressInfo } from "node:net";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { tarBytes } from "../src/busybox.js";
import { freePort, sleep, tempDir } from "../src/harness.js";

export const REGISTRY_BIN = "/usr/bin/docker-registry";
export const HTPASSWD_BIN = "/usr/bin/htpasswd";

export function registrySkipReason(): string | undefined {
  if (!existsSync(REGISTRY_BIN)) return `${REGISTRY_BIN} missing (apt-get install docker-registry)`;
  return undefined;
}

export interface Registry {
  readonly host: string;
  readonly port: number;
  readonly storage: string;
  readonly pid: number;
  log(): string;
  stop(): Promise<void>;
  /** SIGKILL, then wait for the exit. */
  kill(): Promise<void>;
  /** Starts it again on the same port, config and storage. */
  start(): Promise<void>;
}

export type RegistryAuth =
  | { readonly kind: "htpasswd"; readonly user: string; readonly password: string }
  | {
      readonly kind: "token";
      readonly realm: string;
      readonly service: string;
      readonly issuer: string;
      readonly certPath: string;
    };

const live = new Set<Registry>();

/** Stops every registry started here (afterAll / on failure). */
export async function stopRegistries(): Promise<void> {
  await Promise.all([...live].map((r) => r.stop().catch(() => {})));
}

export async function startRegistry(auth?: RegistryAuth): Promise<Registry> {
  const dir = await tempDir("berth-e2e-registry-");
  const storage = join(dir, "storage");
  await mkdir(storage);
  const port = await freePort();
  const lines = [
    "version: 0.1",
    "log:",
    "  level: info",
    "  accesslog:",
    "    disabled: false",
    "storage:",
    "  filesystem:",
    `    rootdirectory: ${storage}`,
    "  delete:",
    "    enabled: true",
    "http:",
    `  addr: 127.0.0.1:${port}`,
    `  secret: ${randomBytes(16).toString("hex")}`,
  ];
  if (auth?.kind === "htpasswd") {
    const file = join(dir, "htpasswd");
    execFileSync(HTPASSWD_BIN, ["-Bbc", file, auth.user, auth.password], { stdio: "ignore" });
    lines.push("auth:", "  htpasswd:", "    realm: berth-test", `    path: ${file}`);
  } else if (auth?.kind === "token") {
    lines.push(
      "auth:",
      "  token:",
      `    realm: ${auth.realm}`,
      `    service: ${auth.service}`,
      `    issuer: ${auth.issuer}`,
      `    rootcertbundle: ${auth.certPath}`,
    );
  }
  const cfg = join(dir, "config.yml");
  await writeFile(cfg, `${lines.join("\n")}\n`);
  let child: ChildProcess | undefined;
  let logText = "";
  const exited = () =>
    new Promise<void>((resolve) => {
      if (child === undefined || child.exitCode !== null || child.signalCode !== null) resolve();
      else child.once("exit", () => resolve());
    });
  const reg: Registry = {
    host: `127.0.0.1:${port}`,
    port,
    storage,
    get pid() {
      return child?.pid ?? -1;
    },
    log: () => logText,
    async start() {
      child = spawn(REGISTRY_BIN, ["serve", cfg], { stdio: ["ignore", "pipe", "pipe"] });
      child.stdout?.setEncoding("utf8").on("data", (c: string) => {
        logText += c;
      });
      child.stderr?.setEncoding("utf8").on("data", (c: string) => {
        logText += c;
      });
      const deadline = Date.now() + 10_000;
      for (;;) {
        if (child.exitCode !== null) throw new Error(`docker-registry exited:\n${logText}`);
        const ok = await new Promise<boolean>((resolve) => {
          const req = http.get(`http://127.0.0.1:${port}/v2/`, (res) => {
            res.resume();
            resolve(true);
          });
          req.on("error", () => resolve(false));
        });
        if (ok) return;
        if (Date.now() > deadline) throw new Error(`docker-registry did not start:\n${logText}`);
        await sleep(50);
      }
    },
    async stop() {
      if (child && child.exitCode === null && child.signalCode === null) {
        const done = exited();
        process.kill(child.pid as number, "SIGTERM");
        const t = setTimeout(() => child?.kill("SIGKILL"), 5000);
        await done;
        clearTimeout(t);
      }
      live.delete(reg);
    },
    async kill() {
      if (child && child.exitCode === null && child.signalCode === null) {
        const done = exited();
        process.kill(child.pid as number, "SIGKILL");
        await done;
      }
    },
  };
  live.add(reg);
  await reg.start();
  return reg;
}

/** A token server for the registry's token auth: GET /token?service&scope with basic credentials. */
export interface TokenServer {
  readonly realm: string;
  readonly service: string;
  readonly issuer: string;
  readonly certPath: string;
  /** Requests seen: [user or "", scope]. */
  readonly requests: Array<{ user: string; scope: string }>;
  close(): Promise<void>;
}

const b64url = (b: Buffer | string) => Buffer.from(b).toString("base64url");

export async function startTokenServer(user: string, password: string): Promise<TokenServer> {
  const dir = await tempDir("berth-e2e-token-");
  const keyPath = join(dir, "key.pem");
  const certPath = join(dir, "cert.pem");
  execFileSync(
    "openssl",
    [
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-keyout",
      keyPath,
      "-out",
      certPath,
      "-days",
      "2",
      "-subj",
      "/CN=berth-test-token",
    ],
    { stdio: "ignore" },
  );
  const key = await readFile(keyPath, "utf8");
  const certDer = Buffer.from(
    (await readFile(certPath, "utf8")).replace(/-----[A-Z ]+-----/g, "").replace(/\s+/g, ""),
    "base64",
  );
  const service = "berth-test-registry";
  const issuer = "berth-test-issuer";
  const requests: Array<{ user: string; scope: string }> = [];
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://x");
    const auth = req.headers.authorization ?? "";
    let who = "";
    let ok = false;
    if (auth.startsWith("Basic ")) {
      const [u, ...p] = Buffer.from(auth.slice(6), "base64").toString("utf8").split(":");
      who = u ?? "";
      ok = u === user && p.join(":") === password;
    }
    const scopes = url.searchParams.getAll("scope");
    requests.push({ user: who, scope: scopes.join(" ") });
    if (!ok) {
      res.writeHead(401, { "content-type": "application/json" });
      res.end(JSON.stringify({ details: "invalid credentials" }));
      return;
    }
    const access = scopes.map((s) => {
      const [type, name, actions] = s.split(":");
      return { type, name, actions: (actions ?? "").split(",") };
    });
    const now = Math.floor(Date.now() / 1000);
    const header = { alg: "RS256", typ: "JWT", x5c: [certDer.toString("base64")] };
    const claims = {
      iss: issuer,
      sub: who,
      aud: url.searchParams.get("service") ?? service,
      exp: now + 300,
      nbf: now - 10,
      iat: now,
      jti: randomBytes(8).toString("hex"),
      access,
    };
    const signing = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    const sig = createSign("RSA-SHA256").update(signing).sign(key);
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ token: `${signing}.${b64url(sig)}`, expires_in: 300 }));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    realm: `http://127.0.0.1:${port}/token`,
    service,
    issuer,
    certPath,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

// ---------------------------------------------------------------------------------------------------------
// images uploaded straight through the distribution API (not through berth), and a throttling proxy

export interface UploadedImage {
  readonly manifest: { digest: string; size: number };
  readonly config: string;
  readonly layers: string[];
}

const sha = (b: Uint8Array) => `sha256:${createHash("sha256").update(b).digest("hex")}`;

async function putBlob(base: string, repo: string, data: Uint8Array): Promise<string> {
  const digest = sha(data);
  const start = await fetch(`${base}/v2/${repo}/blobs/uploads/`, { method: "POST" });
  if (start.status !== 202) throw new Error(`upload start: ${start.status}`);
  const loc = new URL(start.headers.get("location") ?? "", base);
  loc.searchParams.set("digest", digest);
  const put = await fetch(loc, { method: "PUT", body: data, headers: { "content-type": "application/octet-stream" } });
  if (put.status !== 201) throw new Error(`upload put: ${put.status} ${await put.text()}`);
  return digest;
}

/**
 * Uploads an OCI image whose layers are gzip'ed tars with one file of the given bytes each (random data does
 * not compress, so layer sizes are about the data sizes).
 */
export async function uploadImage(
  host: string,
  repo: string,
  tag: string,
  files: readonly Uint8Array[],
): Promise<UploadedImage> {
  const base = `http://${host}`;
  const layers: Array<{ digest: string; size: number; diffID: string }> = [];
  for (const [i, data] of files.entries()) {
    const tar = tarBytes([{ name: `file${i}`, type: "file", mode: 0o644, data }]);
    const gz = gzipSync(tar, { level: 1 });
    layers.push({ digest: await putBlob(base, repo, gz), size: gz.length, diffID: sha(tar) });
  }
  const config = Buffer.from(
    JSON.stringify({
      architecture: process.arch === "arm64" ? "arm64" : "amd64",
      os: "linux",
      config: { Cmd: ["sh"] },
      rootfs: { type: "layers", diff_ids: layers.map((l) => l.diffID) },
    }),
  );
  const configDigest = await putBlob(base, repo, config);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: configDigest, size: config.length },
      layers: layers.map((l) => ({
        mediaType: "application/vnd.oci.image.layer.v1.tar+gzip",
        digest: l.digest,
        size: l.size,
      })),
    }),
  );
  const put = await fetch(`${base}/v2/${repo}/manifests/${tag}`, {
    method: "PUT",
    body: manifest,
    headers: { "content-type": "application/vnd.oci.image.manifest.v1+json" },
  });
  if (put.status !== 201) throw new Error(`manifest put: ${put.status} ${await put.text()}`);
  return {
    manifest: { digest: sha(manifest), size: manifest.length },
    config: configDigest,
    layers: layers.map((l) => l.digest),
  };
}

/** The file docker-registry keeps a blob's bytes in. */
export function registryBlobPath(storage: string, digest: string): string {
  const hex = digest.slice("sha256:".length);
  return join(storage, "docker/registry/v2/blobs/sha256", hex.slice(0, 2), hex, "data");
}

/** A TCP proxy in front of the registry that records request heads and can slow responses down. */
export interface RegistryProxy {
  readonly host: string;
  /** Request heads seen (request line + headers), in order. */
  readonly requests: string[];
  /** Response bytes sent to clients so far. */
  bytes(): number;
  /** Bytes per second per connection for responses (0: unlimited). */
  throttle(bytesPerSecond: number): void;
  /** Drops every open connection. */
  dropAll(): void;
  close(): Promise<void>;
}

export async function startProxy(targetPort: number): Promise<RegistryProxy> {
  const sockets = new Set<net.Socket>();
  const requests: string[] = [];
  let sent = 0;
  let rate = 0;
  const server = net.createServer((client) => {
    const upstream = net.connect(targetPort, "127.0.0.1");
    sockets.add(client).add(upstream);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on("error", drop).on("close", drop);
    upstream.on("error", drop).on("close", drop);
    let head = "";
    client.on("data", (d: Buffer) => {
      // GET/HEAD requests have no body: every head ends with an empty line
      head += d.toString("latin1");
      let i = head.indexOf("\r\n\r\n");
      while (i >= 0) {
        const h = head.slice(0, i);
        if (/^[A-Z]+ \//.test(h)) requests.push(h);
        head = head.slice(i + 4);
        i = head.indexOf("\r\n\r\n");
      }
      if (head.length > 65536) head = "";
      upstream.write(d);
    });
    upstream.on("data", async (d: Buffer) => {
      if (rate > 0) {
        upstream.pause();
        for (let off = 0; off < d.length; off += 16384) {
          const part = d.subarray(off, off + 16384);
          client.write(part);
          sent += part.length;
          await new Promise((r) => setTimeout(r, (part.length / rate) * 1000));
          if (client.destroyed) return;
        }
        upstream.resume();
      } else {
        sent += d.length;
        client.write(d);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  const proxy: RegistryProxy = {
    host: `127.0.0.1:${port}`,
    requests,
    bytes: () => sent,
    throttle(n) {
      rate = n;
    },
    dropAll() {
      for (const s of sockets) s.destroy();
      sockets.clear();
    },
    close: () =>
      new Promise<void>((resolve) => {
        proxy.dropAll();
        server.close(() => resolve());
      }),
  };
  return proxy;
}

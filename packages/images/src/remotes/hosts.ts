/**
 * Registry hosts for a reference's domain, configured as containerd's `certs.d/<host>/hosts.toml`: mirrors first
 * (`[host."…"]` tables in file order), then the server; `capabilities`, `skip_verify`, `ca`, `client`, `header`,
 * `override_path`. Without a file: `docker.io` goes to registry-1.docker.io, localhost speaks plain HTTP.
 */
import { readFile } from "node:fs/promises";
import { isAbsolute, join } from "node:path";
import { InvalidArgumentError, isNotFound, fromNodeError } from "@berth/errdefs";
import { parse as parseToml } from "smol-toml";
import type { TlsOptions } from "./http.js";

export type HostCapability = "pull" | "resolve" | "push";

export interface RegistryHost {
  /** `https` or `http`. */
  readonly scheme: "http" | "https";
  /** host[:port]. */
  readonly host: string;
  /** The API root path, `/v2` unless overridden. */
  readonly path: string;
  readonly capabilities: ReadonlySet<HostCapability>;
  readonly tls?: TlsOptions;
  /** Extra headers sent to this host. */
  readonly headers?: Readonly<Record<string, string>>;
}

export interface HostOptions {
  /** Directory of `<host>/hosts.toml` files (containerd's `config_path`, ctr's `--hosts-dir`). */
  readonly hostsDir?: string;
  /** Use http for the default host (ctr's `--plain-http`). */
  readonly plainHttp?: boolean;
  /** skip_verify for the default host (ctr's `--skip-verify`). */
  readonly skipVerify?: boolean;
}

const ALL: ReadonlySet<HostCapability> = new Set(["pull", "resolve", "push"]);

/** localhost, 127.0.0.0/8 and ::1, with or without a port (containerd's docker.IsLocalhost). */
export function isLocalhost(host: string): boolean {
  let h = host;
  if (h.startsWith("[")) h = h.slice(1, h.indexOf("]"));
  else if (h.includes(":") && h.indexOf(":") === h.lastIndexOf(":")) h = h.slice(0, h.indexOf(":"));
  return h === "localhost" || h === "::1" || /^127\.\d+\.\d+\.\d+$/.test(h);
}

/** The directory name containerd looks up for a host: `docker.io`, `127.0.0.1:5000`, `_default` as fallback. */
function hostDirNames(domain: string): string[] {
  return [domain, "_default"];
}

async function readHostsFile(dir: string, domain: string): Promise<{ dir: string; text: string } | undefined> {
  for (const name of hostDirNames(domain)) {
    const d = join(dir, name);
    try {
      return { dir: d, text: await readFile(join(d, "hosts.toml"), "utf8") };
    } catch (err) {
      const e = fromNodeError(err);
      if (!isNotFound(e)) throw e;
    }
  }
  return undefined;
}

function stringList(v: unknown, what: string): string[] {
  if (v === undefined) return [];
  if (typeof v === "string") return [v];
  if (Array.isArray(v) && v.every((x) => typeof x === "string")) return v as string[];
  throw new InvalidArgumentError(`hosts.toml: ${what} must be a string or a list of strings`);
}

async function tlsOf(table: Record<string, unknown>, dir: string): Promise<TlsOptions | undefined> {
  const resolvePath = (p: string) => (isAbsolute(p) ? p : join(dir, p));
  const ca = await Promise.all(stringList(table.ca, "ca").map((p) => readFile(resolvePath(p))));
  let cert: Buffer | undefined;
  let key: Buffer | undefined;
  // client = "cert.pem" | ["cert.pem", "key.pem"] | [["cert.pem", "key.pem"]]
  const client = table.client;
  const pair = Array.isArray(client) && Array.isArray(client[0]) ? (client[0] as unknown[]) : client;
  const files = stringList(pair, "client");
  if (files[0] !== undefined) {
    cert = await readFile(resolvePath(files[0]));
    key = await readFile(resolvePath(files[1] ?? files[0]));
  }
  const skip = table.skip_verify === true;
  if (ca.length === 0 && !skip && cert === undefined) return undefined;
  return {
    ...(ca.length > 0 ? { ca } : {}),
    ...(skip ? { insecureSkipVerify: true } : {}),
    ...(cert ? { cert } : {}),
    ...(key ? { key } : {}),
  };
}

function headersOf(table: Record<string, unknown>): Record<string, string> | undefined {
  const h = table.header;
  if (h === undefined || typeof h !== "object" || h === null) return undefined;
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h)) out[k] = Array.isArray(v) ? v.map(String).join(", ") : String(v);
  return out;
}

function capabilitiesOf(v: unknown): ReadonlySet<HostCapability> {
  if (v === undefined) return ALL;
  const caps = new Set<HostCapability>();
  for (const c of stringList(v, "capabilities")) {
    if (c !== "pull" && c !== "resolve" && c !== "push") {
      throw new InvalidArgumentError(`hosts.toml: unknown capability ${JSON.stringify(c)}`);
    }
    caps.add(c);
  }
  return caps;
}

function parseServer(s: string, plainHttp: boolean): { scheme: "http" | "https"; host: string; path: string } {
  const withScheme = /^[a-z]+:\/\//.test(s) ? s : `${plainHttp ? "http" : "https"}://${s}`;
  let u: URL;
  try {
    u = new URL(withScheme);
  } catch {
    throw new InvalidArgumentError(`hosts.toml: invalid host ${JSON.stringify(s)}`);
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") {
    throw new InvalidArgumentError(`hosts.toml: unsupported scheme in ${JSON.stringify(s)}`);
  }
  return { scheme: u.protocol === "http:" ? "http" : "https", host: u.host, path: u.pathname.replace(/\/+$/, "") };
}

async function hostOf(
  server: string,
  table: Record<string, unknown>,
  dir: string,
  plainHttp: boolean,
): Promise<RegistryHost> {
  const { scheme, host, path } = parseServer(server, plainHttp);
  const tls = await tlsOf(table, dir);
  const headers = headersOf(table);
  return {
    scheme,
    host,
    path: table.override_path === true ? path || "/" : `${path}/v2`,
    capabilities: capabilitiesOf(table.capabilities),
    ...(tls ? { tls } : {}),
    ...(headers ? { headers } : {}),
  };
}

/** The default server for a domain: docker.io's API host is registry-1.docker.io. */
function defaultServer(domain: string): string {
  return domain === "docker.io" ? "registry-1.docker.io" : domain;
}

/** Parses one hosts.toml's text (exported for tests); `dir` resolves relative certificate paths. */
export async function parseHostsToml(
  text: string,
  domain: string,
  dir: string,
  options: HostOptions = {},
): Promise<RegistryHost[]> {
  let doc: Record<string, unknown>;
  try {
    doc = parseToml(text) as Record<string, unknown>;
  } catch (err) {
    throw new InvalidArgumentError(`${join(dir, "hosts.toml")}: ${(err as Error).message}`, { cause: err });
  }
  const plain = options.plainHttp === true || isLocalhost(domain);
  const hosts: RegistryHost[] = [];
  const mirrors = doc.host;
  if (mirrors !== undefined && (typeof mirrors !== "object" || mirrors === null)) {
    throw new InvalidArgumentError("hosts.toml: host must be a table");
  }
  for (const [server, table] of Object.entries((mirrors ?? {}) as Record<string, unknown>)) {
    hosts.push(await hostOf(server, (table ?? {}) as Record<string, unknown>, dir, plain));
  }
  const server = typeof doc.server === "string" ? doc.server : defaultServer(domain);
  hosts.push(await hostOf(server, doc, dir, plain));
  return hosts;
}

/** The hosts to try for `domain`, in order (containerd's config.ConfigureHosts). */
export async function configureHosts(domain: string, options: HostOptions = {}): Promise<RegistryHost[]> {
  if (options.hostsDir) {
    const file = await readHostsFile(options.hostsDir, domain);
    if (file) return parseHostsToml(file.text, domain, file.dir, options);
  }
  const plain = options.plainHttp === true || isLocalhost(domain);
  return [
    {
      scheme: plain ? "http" : "https",
      host: defaultServer(domain),
      path: "/v2",
      capabilities: ALL,
      ...(options.skipVerify ? { tls: { insecureSkipVerify: true } } : {}),
    },
  ];
}

/**
 * Registry authentication: anonymous, basic, and the bearer token flow (a 401 with `WWW-Authenticate: Bearer
 * realm=…,service=…,scope=…` → a token from the realm). With credentials the token is asked for as containerd
 * does: an OAuth2 POST first (password or refresh-token grant), then the docker GET with basic credentials when
 * the server does not take the POST. Credentials come from a callback (ctr's `--user`) or a docker
 * `config.json` (its `auths`, or a credential helper it names). Secrets never go into messages or errors.
 */
import { readFile } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import {
  PermissionDeniedError,
  UnauthenticatedError,
  UnavailableError,
  fromNodeError,
  isNotFound,
} from "@berth/errdefs";
import { type TlsOptions, send } from "./http.js";

export interface Credentials {
  readonly username: string;
  readonly secret: string;
}

/** Credentials for a registry host (host[:port]); undefined = anonymous. */
export type CredentialsFn = (host: string) => Promise<Credentials | undefined> | Credentials | undefined;

/** One challenge of a WWW-Authenticate header. */
export interface Challenge {
  readonly scheme: string;
  readonly params: Readonly<Record<string, string>>;
}

/** Parses `WWW-Authenticate` (RFC 7235: scheme followed by comma-separated `k=v` or `k="v"` params). */
export function parseChallenges(header: string | string[] | undefined): Challenge[] {
  const values = header === undefined ? [] : Array.isArray(header) ? header : [header];
  const out: Challenge[] = [];
  for (const value of values) {
    const re = /\s*([A-Za-z][\w-]*)(?:\s+|$)|\s*([\w-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,"]*))\s*,?/y;
    let current: { scheme: string; params: Record<string, string> } | undefined;
    let i = 0;
    while (i < value.length) {
      re.lastIndex = i;
      const m = re.exec(value);
      if (m === null || re.lastIndex === i) break;
      i = re.lastIndex;
      if (m[1] !== undefined) {
        current = { scheme: m[1].toLowerCase(), params: {} };
        out.push(current);
      } else if (current && m[2] !== undefined) {
        current.params[m[2].toLowerCase()] = m[3] !== undefined ? m[3].replace(/\\(.)/g, "$1") : (m[4] ?? "");
      }
      while (value[i] === "," || value[i] === " ") i++;
    }
  }
  return out;
}

/** The docker CLI's config: `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`. */
export function dockerConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  return join(env.DOCKER_CONFIG || join(homedir(), ".docker"), "config.json");
}

/** Keys docker uses for Docker Hub in config.json. */
const HUB_KEYS = ["https://index.docker.io/v1/", "index.docker.io", "docker.io", "registry-1.docker.io"];

function hostKeyMatches(key: string, host: string): boolean {
  const bare = key.replace(/^[a-z]+:\/\//, "").replace(/\/.*$/, "");
  return bare === host;
}

/**
 * Credentials from a docker config.json (`auths.<host>.auth` = base64 `user:password`, or `username` /
 * `password`, or `identitytoken` used as the password of `<token>` as docker does). Missing file: anonymous.
 */
export function dockerConfigCredentials(path = dockerConfigPath()): CredentialsFn {
  let loaded: Promise<DockerConfig> | undefined;
  const load = async (): Promise<DockerConfig> => {
    try {
      return JSON.parse(await readFile(path, "utf8")) as DockerConfig;
    } catch (err) {
      const e = fromNodeError(err);
      if (isNotFound(e)) return {};
      throw new UnavailableError(`docker config ${path}: cannot read`, { cause: err });
    }
  };
  return async (host) => {
    loaded ??= load();
    const config = await loaded;
    const isHub = host === "registry-1.docker.io" || host === "docker.io";
    const matches = (k: string) => (isHub ? HUB_KEYS.includes(k) : hostKeyMatches(k, host));
    // docker's order: a helper for this registry, then the default store, then the file's own entries
    const helper = Object.entries(config.credHelpers ?? {}).find(([k]) => matches(k))?.[1] || config.credsStore;
    if (typeof helper === "string" && helper !== "") {
      return credentialHelperGet(helper, isHub ? HUB_KEYS[0]! : host);
    }
    const entry = Object.entries(config.auths ?? {}).find(([k]) => matches(k))?.[1] ?? undefined;
    if (entry === undefined) return undefined;
    if (typeof entry.identitytoken === "string" && entry.identitytoken !== "") {
      return { username: "", secret: entry.identitytoken };
    }
    if (typeof entry.auth === "string" && entry.auth !== "") {
      const decoded = Buffer.from(entry.auth, "base64").toString("utf8");
      const i = decoded.indexOf(":");
      if (i > 0) return { username: decoded.slice(0, i), secret: decoded.slice(i + 1) };
    }
    if (typeof entry.username === "string" && typeof entry.password === "string") {
      return { username: entry.username, secret: entry.password };
    }
    return undefined;
  };
}

interface DockerConfig {
  auths?: Record<string, Record<string, unknown>>;
  credsStore?: unknown;
  credHelpers?: Record<string, unknown>;
}

/**
 * `docker-credential-<name> get` with the server URL on stdin (the docker credential helper protocol): its
 * JSON `{Username, Secret}`, undefined when it has none for that server. A `<token>` username is an identity
 * (refresh) token.
 */
async function credentialHelperGet(name: string, server: string): Promise<Credentials | undefined> {
  if (!/^[A-Za-z0-9._-]+$/.test(name))
    throw new UnavailableError(`invalid credential helper name ${JSON.stringify(name)}`);
  const binary = `docker-credential-${name}`;
  const { run } = await import("@berth/spawn");
  let r: Awaited<ReturnType<typeof run>>;
  try {
    r = await run(binary, ["get"], { input: Buffer.from(server), timeoutMs: 30_000 });
  } catch (err) {
    throw new UnavailableError(`credential helper ${binary}: cannot run it`, { cause: err });
  }
  const out = r.stdout.toString("utf8");
  if (r.code !== 0) {
    // what the helpers print for an unknown server (docker-credential-helpers' ErrCredentialsNotFound)
    if (/credentials not found/i.test(out + r.stderr.toString("utf8"))) return undefined;
    throw new UnavailableError(`credential helper ${binary} failed (exit ${r.code ?? r.signal})`);
  }
  let doc: { Username?: unknown; Secret?: unknown };
  try {
    doc = JSON.parse(out) as typeof doc;
  } catch {
    throw new UnavailableError(`credential helper ${binary} printed no JSON`);
  }
  if (typeof doc.Secret !== "string" || doc.Secret === "") return undefined;
  const username = typeof doc.Username === "string" ? doc.Username : "";
  return { username: username === "<token>" ? "" : username, secret: doc.Secret };
}

/** ctr's `--user user[:password]`. */
export function staticCredentials(user: string): CredentialsFn {
  const i = user.indexOf(":");
  const creds = i < 0 ? { username: user, secret: "" } : { username: user.slice(0, i), secret: user.slice(i + 1) };
  return () => creds;
}

const basicHeader = (c: Credentials) => `Basic ${Buffer.from(`${c.username}:${c.secret}`).toString("base64")}`;

interface HostAuthState {
  challenge?: Challenge;
  /** Bearer tokens by scope string. */
  readonly tokens: Map<string, { token: string; expiresAt: number }>;
}

/**
 * Adds Authorization headers to registry requests and answers 401 challenges. One per resolver, shared by its
 * fetchers and pushers; state is per host.
 */
export class Authorizer {
  readonly #credentials: CredentialsFn | undefined;
  readonly #hosts = new Map<string, HostAuthState>();

  constructor(credentials?: CredentialsFn) {
    this.#credentials = credentials;
  }

  #state(host: string): HostAuthState {
    let s = this.#hosts.get(host);
    if (s === undefined) {
      s = { tokens: new Map() };
      this.#hosts.set(host, s);
    }
    return s;
  }

  /** The Authorization header for a request to `host` needing `scopes`, if a challenge was seen before. */
  async header(
    host: string,
    scopes: readonly string[],
    tls?: TlsOptions,
    signal?: AbortSignal,
  ): Promise<string | undefined> {
    const s = this.#state(host);
    const c = s.challenge;
    if (c === undefined) return undefined;
    if (c.scheme === "basic") {
      const creds = await this.#credentials?.(host);
      return creds ? basicHeader(creds) : undefined;
    }
    if (c.scheme === "bearer") {
      const key = [...scopes].sort().join(" ");
      const cached = s.tokens.get(key);
      if (cached && cached.expiresAt > Date.now()) return `Bearer ${cached.token}`;
      const token = await this.#fetchToken(host, c, scopes, tls, signal);
      s.tokens.set(key, token);
      return `Bearer ${token.token}`;
    }
    return undefined;
  }

  /**
   * Records a 401's challenge. True when the request is worth sending again (a new or changed challenge that
   * we can answer); false when the same credentials were already rejected.
   */
  async challenged(host: string, wwwAuthenticate: string | string[] | undefined, hadAuth: boolean): Promise<boolean> {
    const challenges = parseChallenges(wwwAuthenticate);
    const c = challenges.find((x) => x.scheme === "bearer") ?? challenges.find((x) => x.scheme === "basic");
    if (c === undefined) return false;
    const s = this.#state(host);
    const prev = s.challenge;
    s.challenge = c;
    if (c.scheme === "basic") {
      if (hadAuth) return false;
      return (await this.#credentials?.(host)) !== undefined;
    }
    // bearer: a token was rejected; retry once if the challenge asks for something new (an error= or new scope)
    if (!hadAuth) return true;
    s.tokens.clear();
    return prev === undefined || prev.scheme !== "bearer" || (c.params.scope ?? "") !== (prev.params.scope ?? "");
  }

  async #fetchToken(
    host: string,
    c: Challenge,
    scopes: readonly string[],
    tls: TlsOptions | undefined,
    signal: AbortSignal | undefined,
  ): Promise<{ token: string; expiresAt: number }> {
    const realm = c.params.realm;
    if (!realm) throw new UnauthenticatedError(`${host}: bearer challenge without a realm`);
    let url: URL;
    try {
      url = new URL(realm);
    } catch {
      throw new UnauthenticatedError(`${host}: invalid token realm`);
    }
    if (c.params.service) url.searchParams.set("service", c.params.service);
    const all = new Set(scopes);
    if (c.params.scope) for (const sc of c.params.scope.split(" ")) if (sc) all.add(sc);
    const sorted = [...all].sort();
    for (const sc of sorted) url.searchParams.append("scope", sc);
    const creds = await this.#credentials?.(host);
    let oauthStatus: number | undefined;
    if (creds !== undefined && creds.secret !== "") {
      const viaOAuth = await this.#fetchOAuthToken(host, c, sorted, creds, tls, signal);
      if (typeof viaOAuth !== "number") return viaOAuth;
      oauthStatus = viaOAuth;
    }
    const res = await send({
      method: "GET",
      url,
      headers: creds ? { authorization: basicHeader(creds) } : {},
      ...(tls ? { tls } : {}),
      ...(signal ? { signal } : {}),
    });
    const body = await res.text();
    // a POST-only endpoint that refused the credentials answers the GET with 404/405: the refusal is the news
    if (res.status === 401 || (oauthStatus === 401 && (res.status === 404 || res.status === 405))) {
      throw new UnauthenticatedError(`${host}: token endpoint ${url.origin}${url.pathname} rejected the credentials`);
    }
    return tokenOf(host, url, res.status, body, "token");
  }

  /**
   * containerd's FetchTokenWithOAuth: POST the realm a form with the password grant (or the refresh-token grant
   * for an identity token, which has no username). When the server does not take it (400, 401, 404, and 405
   * with a username, as containerd decides) its status is returned and the caller falls back to the GET.
   */
  async #fetchOAuthToken(
    host: string,
    c: Challenge,
    scopes: readonly string[],
    creds: Credentials,
    tls: TlsOptions | undefined,
    signal: AbortSignal | undefined,
  ): Promise<{ token: string; expiresAt: number } | number> {
    const url = new URL(c.params.realm as string);
    const form = new URLSearchParams();
    if (scopes.length > 0) form.set("scope", scopes.join(" "));
    form.set("service", c.params.service ?? "");
    form.set("client_id", OAUTH_CLIENT_ID);
    if (creds.username === "") {
      form.set("grant_type", "refresh_token");
      form.set("refresh_token", creds.secret);
    } else {
      form.set("grant_type", "password");
      form.set("username", creds.username);
      form.set("password", creds.secret);
    }
    const payload = Buffer.from(form.toString());
    const res = await send({
      method: "POST",
      url,
      headers: { "content-type": "application/x-www-form-urlencoded", "content-length": String(payload.length) },
      body: () => payload,
      ...(tls ? { tls } : {}),
      ...(signal ? { signal } : {}),
    });
    const body = await res.text();
    if (
      res.status === 400 ||
      res.status === 401 ||
      res.status === 404 ||
      (res.status === 405 && creds.username !== "")
    ) {
      return res.status;
    }
    return tokenOf(host, url, res.status, body, "access_token");
  }
}

/**
 * The token of a token endpoint's answer (403 PermissionDenied, other non-200 Unavailable). Docker's GET
 * answers `token`, OAuth2's POST `access_token`; either field is taken, `preferred` first.
 */
function tokenOf(
  host: string,
  url: URL,
  status: number,
  body: string,
  preferred: "token" | "access_token",
): { token: string; expiresAt: number } {
  const endpoint = `${host}: token endpoint ${url.origin}${url.pathname}`;
  if (status === 403) throw new PermissionDeniedError(`${endpoint} denied access`);
  if (status !== 200) throw new UnavailableError(`${endpoint}: HTTP ${status}`);
  let doc: { token?: unknown; access_token?: unknown; expires_in?: unknown };
  try {
    doc = JSON.parse(body) as typeof doc;
  } catch {
    throw new UnavailableError(`${host}: token endpoint returned invalid JSON`);
  }
  const other = preferred === "token" ? "access_token" : "token";
  const token = typeof doc[preferred] === "string" && doc[preferred] ? doc[preferred] : doc[other];
  if (typeof token !== "string" || token === "")
    throw new UnauthenticatedError(`${host}: token endpoint returned no token`);
  return withExpiry(token, doc.expires_in);
}

/** containerd's OAuth client id, so registries see the same client as from containerd. */
const OAUTH_CLIENT_ID = "containerd-client";

function withExpiry(token: string, expiresIn: unknown): { token: string; expiresAt: number } {
  const seconds = typeof expiresIn === "number" && expiresIn > 0 ? expiresIn : 60;
  // renew a little early
  return { token, expiresAt: Date.now() + Math.max(1, seconds - 5) * 1000 };
}

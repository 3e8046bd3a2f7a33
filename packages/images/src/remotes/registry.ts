/**
 * The OCI distribution API for one repository (containerd's core/remotes/docker): manifests and blobs by digest,
 * HEAD existence checks, uploads (cross-repository mount, monolithic PUT, chunked PATCH), over the configured
 * hosts in order, with auth challenges answered and redirects followed. HTTP statuses become error kinds here.
 */
import { createHash } from "node:crypto";
import {
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  PermissionDeniedError,
  ResourceExhaustedError,
  UnauthenticatedError,
  UnavailableError,
  UnknownError,
  errorKind,
} from "@berth/errdefs";
import type { Descriptor } from "@berth/oci-spec";
import {
  MediaTypeDockerSchema2Manifest,
  MediaTypeDockerSchema2ManifestList,
  MediaTypeImageIndex,
  MediaTypeImageManifest,
  isIndexType,
  isManifestType,
} from "@berth/oci-spec";
import type { Authorizer } from "./auth.js";
import type { HostCapability, RegistryHost } from "./hosts.js";
import { type BodyFactory, type HttpResponse, type RetryOptions, send } from "./http.js";

/** What resolve asks for: every manifest and index type Berth understands, best first. */
export const MANIFEST_ACCEPT = [
  MediaTypeDockerSchema2Manifest,
  MediaTypeDockerSchema2ManifestList,
  MediaTypeImageManifest,
  MediaTypeImageIndex,
  "*/*",
].join(", ");

/** Manifests bigger than this are refused when read into memory (containerd's limit). */
export const MAX_MANIFEST_BYTES = 4 << 20;

export interface CallOptions {
  readonly signal?: AbortSignal;
}

interface RequestSpec {
  readonly method: "GET" | "HEAD" | "PUT" | "POST" | "PATCH";
  /** Path after `<host path>/<repo>/` (e.g. `blobs/sha256:…`), or an absolute URL (upload locations). */
  readonly path: string | URL;
  readonly headers?: Record<string, string>;
  readonly body?: BodyFactory;
  readonly scopes: readonly string[];
}

/** A registry error body (`{"errors":[{"code":"…","message":"…"}]}`), shortened to its first message. */
async function registryMessage(res: HttpResponse): Promise<string> {
  if (res.body.readableEnded) return "";
  try {
    const text = (await res.text()).slice(0, 4096);
    const doc = JSON.parse(text) as { errors?: Array<{ code?: string; message?: string }> };
    const e = doc.errors?.[0];
    if (e) return [e.code, e.message].filter(Boolean).join(": ");
  } catch {
    // not JSON
  }
  return "";
}

/** A repository on a registry, as reached through its configured hosts. */
export class Repository {
  /** The reference domain (docker.io, 127.0.0.1:5000). */
  readonly domain: string;
  /** The repository path (library/busybox). */
  readonly path: string;
  readonly #hosts: readonly RegistryHost[];
  readonly #auth: Authorizer;
  readonly #retry: RetryOptions;

  constructor(
    domain: string,
    path: string,
    hosts: readonly RegistryHost[],
    auth: Authorizer,
    retry: RetryOptions = {},
  ) {
    this.domain = domain;
    this.path = path;
    this.#hosts = hosts;
    this.#auth = auth;
    this.#retry = retry;
  }

  /** `repository:<path>:pull` (and `,push`). */
  scope(push = false): string {
    return `repository:${this.path}:${push ? "pull,push" : "pull"}`;
  }

  hostsWith(capability: HostCapability): RegistryHost[] {
    return this.#hosts.filter((h) => h.capabilities.has(capability));
  }

  /** Sends one request to one host: answers a 401 challenge once, follows up to 5 redirects. */
  async request(host: RegistryHost, spec: RequestSpec, opts: CallOptions): Promise<HttpResponse> {
    let url =
      spec.path instanceof URL
        ? spec.path
        : new URL(`${host.scheme}://${host.host}${host.path}/${this.path}/${spec.path}`);
    let retriedAuth = false;
    for (let redirects = 0; ; ) {
      const sameHost = url.host === host.host;
      const auth = sameHost ? await this.#auth.header(host.host, spec.scopes, host.tls, opts.signal) : undefined;
      const res = await send(
        {
          method: spec.method,
          url,
          headers: {
            ...(sameHost ? host.headers : {}),
            ...spec.headers,
            ...(auth ? { authorization: auth } : {}),
          },
          ...(spec.body ? { body: spec.body } : {}),
          ...(host.tls ? { tls: host.tls } : {}),
          ...(opts.signal ? { signal: opts.signal } : {}),
        },
        this.#retry,
      );
      if (res.status === 401 && sameHost && !retriedAuth) {
        retriedAuth = true;
        if (await this.#auth.challenged(host.host, res.headers["www-authenticate"], auth !== undefined)) {
          res.discard();
          continue;
        }
      }
      const location = res.headers.location;
      if (
        [301, 302, 303, 307, 308].includes(res.status) &&
        location &&
        spec.method !== "POST" &&
        spec.method !== "PUT" &&
        spec.method !== "PATCH"
      ) {
        if (++redirects > 5) throw new UnavailableError(`${url.origin}: too many redirects`);
        res.discard();
        url = new URL(location, url);
        continue;
      }
      return res;
    }
  }

  /** An error of the right kind for an unexpected answer. */
  async statusError(res: HttpResponse, what: string): Promise<Error> {
    const detail = await registryMessage(res);
    const msg = `${what}: ${res.status === 401 || res.status === 403 ? "" : `unexpected status ${res.status}`}${detail ? `${res.status === 401 || res.status === 403 ? "" : ": "}${detail}` : ""}`;
    switch (res.status) {
      case 401:
        return new UnauthenticatedError(`${what}: authorization failed${detail ? ` (${detail})` : ""}`);
      case 403:
        return new PermissionDeniedError(`${what}: access denied${detail ? ` (${detail})` : ""}`);
      case 404:
        return new NotFoundError(`${what}: not found`);
      case 400:
        return new InvalidArgumentError(msg);
      case 412:
        return new FailedPreconditionError(msg);
      case 429:
        return new ResourceExhaustedError(`${what}: too many requests`);
      default:
        return res.status >= 500 ? new UnavailableError(msg) : new UnknownError(msg);
    }
  }

  /**
   * Tries the hosts with `capability` in order: a 404 or an unreachable host moves on to the next one; other
   * answers are returned. `accept` says which statuses count as success.
   */
  async #tryHosts(
    capability: HostCapability,
    spec: (host: RegistryHost) => RequestSpec,
    accept: (status: number) => boolean,
    what: string,
    opts: CallOptions,
  ): Promise<{ host: RegistryHost; res: HttpResponse }> {
    const hosts = this.hostsWith(capability);
    if (hosts.length === 0) throw new NotFoundError(`${what}: no host with the ${capability} capability`);
    let lastErr: Error | undefined;
    for (const host of hosts) {
      let res: HttpResponse;
      try {
        res = await this.request(host, spec(host), opts);
      } catch (err) {
        if (errorKind(err) !== "Unavailable") throw err;
        lastErr = err as Error;
        continue;
      }
      if (accept(res.status)) return { host, res };
      lastErr = await this.statusError(res, what);
      res.discard();
      if (res.status !== 404 && res.status < 500) throw lastErr;
    }
    throw lastErr ?? new NotFoundError(`${what}: not found`);
  }

  /**
   * Resolves a tag or digest to the manifest or index descriptor: HEAD first, GET (and hash the body) when
   * the registry leaves out the digest or media type.
   */
  async resolve(object: string, opts: CallOptions = {}): Promise<Descriptor> {
    const what = `${this.domain}/${this.path}${object.includes(":") ? "@" : ":"}${object}`;
    const headers = { accept: MANIFEST_ACCEPT };
    const { host, res } = await this.#tryHosts(
      "resolve",
      () => ({ method: "HEAD", path: `manifests/${object}`, headers, scopes: [this.scope()] }),
      (s) => s === 200,
      what,
      opts,
    );
    res.discard();
    const mediaType =
      String(res.headers["content-type"] ?? "")
        .split(";")[0]
        ?.trim() ?? "";
    const digest = String(res.headers["docker-content-digest"] ?? "");
    const size = Number(res.headers["content-length"] ?? Number.NaN);
    const known = object.includes(":") ? object : digest;
    if (
      known &&
      mediaType &&
      (isManifestType(mediaType) || isIndexType(mediaType)) &&
      Number.isFinite(size) &&
      size > 0
    ) {
      if (object.includes(":") && digest && digest !== object) {
        throw new FailedPreconditionError(`${what}: registry returned digest ${digest}`);
      }
      return { mediaType, digest: known as Descriptor["digest"], size };
    }
    // GET the manifest: its bytes give the digest and size
    const get = await this.request(
      host,
      { method: "GET", path: `manifests/${object}`, headers, scopes: [this.scope()] },
      opts,
    );
    if (get.status !== 200) {
      const err = await this.statusError(get, what);
      get.discard();
      throw err;
    }
    const hash = createHash("sha256");
    let n = 0;
    for await (const chunk of get.body) {
      n += (chunk as Buffer).length;
      if (n > MAX_MANIFEST_BYTES) {
        get.body.destroy();
        throw new ResourceExhaustedError(`${what}: manifest larger than ${MAX_MANIFEST_BYTES} bytes`);
      }
      hash.update(chunk as Buffer);
    }
    const got = `sha256:${hash.digest("hex")}`;
    if (object.includes(":") && got !== object) {
      throw new FailedPreconditionError(`${what}: manifest content does not match its digest (got ${got})`);
    }
    const type =
      String(get.headers["content-type"] ?? "")
        .split(";")[0]
        ?.trim() ?? "";
    if (!isManifestType(type) && !isIndexType(type)) {
      throw new InvalidArgumentError(`${what}: unsupported manifest media type ${JSON.stringify(type)}`);
    }
    return { mediaType: type, digest: got as Descriptor["digest"], size: n };
  }

  /**
   * GETs a blob or manifest from `offset` (a Range request when > 0). The response status is 200 (whole) or
   * 206 (from offset); the caller reads `body`.
   */
  async fetch(desc: Descriptor, offset: number, opts: CallOptions = {}): Promise<HttpResponse> {
    const kind = isManifestType(desc.mediaType) || isIndexType(desc.mediaType) ? "manifests" : "blobs";
    const headers: Record<string, string> = {
      accept: kind === "manifests" ? `${desc.mediaType}, */*` : "*/*",
      ...(offset > 0 ? { range: `bytes=${offset}-` } : {}),
    };
    const { res } = await this.#tryHosts(
      "pull",
      () => ({ method: "GET", path: `${kind}/${desc.digest}`, headers, scopes: [this.scope()] }),
      (s) => s === 200 || (offset > 0 && s === 206),
      `${this.domain}/${this.path}@${desc.digest}`,
      opts,
    );
    return res;
  }

  /** HEAD: whether the registry has the blob (or manifest) already. */
  async exists(desc: Descriptor, opts: CallOptions = {}): Promise<boolean> {
    const kind = isManifestType(desc.mediaType) || isIndexType(desc.mediaType) ? "manifests" : "blobs";
    const host = this.hostsWith("push")[0];
    if (host === undefined) throw new NotFoundError(`${this.domain}: no host with the push capability`);
    const res = await this.request(
      host,
      {
        method: "HEAD",
        path: `${kind}/${desc.digest}`,
        headers: kind === "manifests" ? { accept: MANIFEST_ACCEPT } : {},
        scopes: [this.scope(true)],
      },
      opts,
    );
    res.discard();
    if (res.status === 200) return true;
    if (res.status === 404) return false;
    throw await this.statusError(res, `${this.domain}/${this.path}@${desc.digest}`);
  }

  #pushHost(): RegistryHost {
    const host = this.hostsWith("push")[0];
    if (host === undefined) throw new NotFoundError(`${this.domain}: no host with the push capability`);
    return host;
  }

  /**
   * Uploads a blob: a cross-repository mount from `mountFrom` when given (same registry), else a monolithic
   * PUT, or PATCH chunks of `chunkSize` bytes followed by the closing PUT when `chunkSize` > 0.
   * `read(offset, length)` gives the blob's bytes.
   */
  async pushBlob(
    desc: Descriptor,
    read: (offset: number, length: number) => AsyncIterable<Uint8Array>,
    options: CallOptions & { mountFrom?: string; chunkSize?: number; onProgress?: (bytes: number) => void } = {},
  ): Promise<"mounted" | "uploaded"> {
    const host = this.#pushHost();
    const what = `${this.domain}/${this.path}@${desc.digest}`;
    const scopes = [this.scope(true), ...(options.mountFrom ? [`repository:${options.mountFrom}:pull`] : [])];
    const query = options.mountFrom
      ? `?mount=${encodeURIComponent(desc.digest)}&from=${encodeURIComponent(options.mountFrom)}`
      : "";
    const start = await this.request(host, { method: "POST", path: `blobs/uploads/${query}`, scopes }, options);
    if (start.status === 201) {
      start.discard();
      options.onProgress?.(desc.size);
      return "mounted";
    }
    if (start.status !== 202) {
      const err = await this.statusError(start, what);
      start.discard();
      throw err;
    }
    start.discard();
    let location = this.#location(start, host);
    const chunk = options.chunkSize ?? 0;
    if (chunk > 0 && desc.size > 0) {
      for (let off = 0; off < desc.size; off += chunk) {
        const len = Math.min(chunk, desc.size - off);
        const res = await this.request(
          host,
          {
            method: "PATCH",
            path: location,
            headers: {
              "content-type": "application/octet-stream",
              "content-range": `${off}-${off + len - 1}`,
              "content-length": String(len),
            },
            body: () => read(off, len),
            scopes,
          },
          options,
        );
        if (res.status !== 202) {
          const err = await this.statusError(res, what);
          res.discard();
          throw err;
        }
        res.discard();
        location = this.#location(res, host);
        options.onProgress?.(off + len);
      }
      location.searchParams.set("digest", desc.digest);
      const done = await this.request(
        host,
        { method: "PUT", path: location, headers: { "content-length": "0" }, scopes },
        options,
      );
      return this.#uploaded(done, what);
    }
    location.searchParams.set("digest", desc.digest);
    const res = await this.request(
      host,
      {
        method: "PUT",
        path: location,
        headers: { "content-type": "application/octet-stream", "content-length": String(desc.size) },
        body: () => read(0, desc.size),
        scopes,
      },
      options,
    );
    const r = await this.#uploaded(res, what);
    options.onProgress?.(desc.size);
    return r;
  }

  async #uploaded(res: HttpResponse, what: string): Promise<"uploaded"> {
    if (res.status === 201 || res.status === 204) {
      res.discard();
      return "uploaded";
    }
    const err = await this.statusError(res, what);
    res.discard();
    throw err;
  }

  #location(res: HttpResponse, host: RegistryHost): URL {
    const loc = res.headers.location;
    if (!loc) throw new UnknownError(`${this.domain}/${this.path}: upload started without a Location`);
    return new URL(loc, `${host.scheme}://${host.host}/`);
  }

  /** PUTs a manifest or index under `reference` (a tag or its digest). */
  async pushManifest(desc: Descriptor, bytes: Uint8Array, reference: string, opts: CallOptions = {}): Promise<void> {
    const host = this.#pushHost();
    const res = await this.request(
      host,
      {
        method: "PUT",
        path: `manifests/${reference}`,
        headers: { "content-type": desc.mediaType, "content-length": String(bytes.length) },
        body: () => bytes,
        scopes: [this.scope(true)],
      },
      opts,
    );
    await this.#uploaded(res, `${this.domain}/${this.path}:${reference}`);
  }
}

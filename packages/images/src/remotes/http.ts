/**
 * HTTP for registry calls over node:http / node:https: per-host TLS (custom CA, skip_verify) is an agent option
 * there, with no extra dependency, and response bodies stay Node streams that pipe straight into the content
 * store. Retries with backoff on 5xx, resets and refused connections, for requests whose body can be replayed.
 */
import { createHash } from "node:crypto";
import http, { type IncomingHttpHeaders, type IncomingMessage } from "node:http";
import https from "node:https";
import { UnavailableError } from "@berth/errdefs";

export interface TlsOptions {
  /** PEM CA certificates to trust in addition to nothing else (as Go's RootCAs when set). */
  readonly ca?: readonly Buffer[];
  /** skip_verify: accept any certificate. */
  readonly insecureSkipVerify?: boolean;
  /** Client certificate and key (PEM) for mutual TLS. */
  readonly cert?: Buffer;
  readonly key?: Buffer;
}

/** A request body that can be produced again for a retry. */
export type BodyFactory = () => Uint8Array | AsyncIterable<Uint8Array>;

export interface HttpRequest {
  readonly method: "GET" | "HEAD" | "PUT" | "POST" | "PATCH" | "DELETE";
  readonly url: URL;
  readonly headers?: Record<string, string>;
  readonly body?: BodyFactory;
  readonly tls?: TlsOptions;
  readonly signal?: AbortSignal;
}

export interface HttpResponse {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly url: URL;
  /** The body; call `text()`/`bytes()` or consume it, or `discard()` it. */
  readonly body: IncomingMessage;
  text(): Promise<string>;
  discard(): void;
}

const agents = new Map<string, http.Agent>();

function agentFor(url: URL, tls: TlsOptions | undefined): http.Agent {
  // agents are shared by identical TLS settings only (a pooled socket carries the trust it was made with)
  const hash = createHash("sha256");
  for (const b of [...(tls?.ca ?? []), tls?.cert, tls?.key]) hash.update(b ?? "-").update("\0");
  const key = `${url.protocol}${tls?.insecureSkipVerify ? "!" : ""}${tls ? hash.digest("hex") : ""}`;
  let agent = agents.get(key);
  if (agent === undefined) {
    agent =
      url.protocol === "https:"
        ? new https.Agent({
            keepAlive: true,
            maxSockets: 16,
            ...(tls?.ca && tls.ca.length > 0 ? { ca: tls.ca.map((c) => c.toString()) } : {}),
            ...(tls?.insecureSkipVerify ? { rejectUnauthorized: false } : {}),
            ...(tls?.cert ? { cert: tls.cert } : {}),
            ...(tls?.key ? { key: tls.key } : {}),
          })
        : new http.Agent({ keepAlive: true, maxSockets: 16 });
    agents.set(key, agent);
  }
  return agent;
}

const RETRYABLE_CODES = new Set(["ECONNRESET", "ECONNREFUSED", "EPIPE", "ETIMEDOUT", "ECONNABORTED", "EAI_AGAIN"]);

/** Network errors worth another try. */
export function isRetryableNetworkError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" && RETRYABLE_CODES.has(code);
}

function sendOnce(req: HttpRequest): Promise<HttpResponse> {
  return new Promise((resolve, reject) => {
    const mod = req.url.protocol === "https:" ? https : http;
    const r = mod.request(req.url, {
      method: req.method,
      headers: { "user-agent": "berth/0.1", ...req.headers },
      agent: agentFor(req.url, req.tls),
      ...(req.signal ? { signal: req.signal } : {}),
    });
    r.once("error", reject);
    r.once("response", (res) => {
      resolve({
        status: res.statusCode ?? 0,
        headers: res.headers,
        url: req.url,
        body: res,
        async text() {
          let s = "";
          res.setEncoding("utf8");
          for await (const c of res) s += c as string;
          return s;
        },
        discard() {
          res.resume();
        },
      });
    });
    const body = req.body?.();
    if (body === undefined) r.end();
    else if (body instanceof Uint8Array) r.end(body);
    else {
      void (async () => {
        try {
          for await (const chunk of body) {
            if (!r.write(chunk)) await new Promise<void>((ok) => r.once("drain", ok));
          }
          r.end();
        } catch (err) {
          r.destroy(err as Error);
        }
      })();
    }
  });
}

export interface RetryOptions {
  /** Attempts in all (default 4). */
  readonly attempts?: number;
  /** First backoff in ms, doubled each time (default 100). */
  readonly backoffMs?: number;
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener(
      "abort",
      () => {
        clearTimeout(t);
        reject(signal.reason);
      },
      { once: true },
    );
  });

/**
 * Sends a request, retrying 5xx answers (other than 501) and network resets with exponential backoff.
 * After the last attempt a network error becomes Unavailable; a 5xx answer is returned to the caller.
 */
export async function send(req: HttpRequest, retry: RetryOptions = {}): Promise<HttpResponse> {
  const attempts = retry.attempts ?? 4;
  let delay = retry.backoffMs ?? 100;
  for (let i = 1; ; i++) {
    try {
      const res = await sendOnce(req);
      if (res.status >= 500 && res.status !== 501 && i < attempts) {
        res.discard();
        await sleep(delay, req.signal);
        delay *= 2;
        continue;
      }
      return res;
    } catch (err) {
      if (req.signal?.aborted) throw req.signal.reason;
      if (!isRetryableNetworkError(err) || i >= attempts) {
        // DNS, TLS and connection failures: the registry cannot be reached (the code says why)
        const code = (err as { code?: unknown }).code;
        if (typeof code !== "string" || (code.startsWith("ERR_") && !/^ERR_(TLS|SSL)_/.test(code))) throw err;
        throw new UnavailableError(`${req.method} ${req.url.origin}${req.url.pathname}: ${code}`, { cause: err });
      }
      await sleep(delay, req.signal);
      delay *= 2;
    }
  }
}

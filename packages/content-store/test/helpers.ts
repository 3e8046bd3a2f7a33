import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Content } from "@berth/api/services/content/v1";
import { toConnectError } from "@berth/errdefs/connect";
import { NAMESPACE_HEADER } from "@berth/identifiers";
import { type Interceptor, type StreamResponse, type Transport, createRouterTransport } from "@connectrpc/connect";
import type { ContentStore } from "../src/content.js";
import { type LocalContentStore, createLocalStore } from "../src/local/index.js";
import { contentService } from "../src/service/index.js";

async function* mapStreamErrors<T>(messages: AsyncIterable<T>): AsyncIterable<T> {
  try {
    yield* messages;
  } catch (err) {
    throw toConnectError(err);
  }
}

/** What the daemon's server interceptor does for errors: typed errors become gRPC codes. */
export const errorInterceptor: Interceptor = (next) => async (req) => {
  try {
    const res = await next(req);
    return res.stream ? ({ ...res, message: mapStreamErrors(res.message) } as StreamResponse) : res;
  } catch (err) {
    throw toConnectError(err);
  }
};

/** A client interceptor that sets the namespace header (as the CLI does) unless the call set one. */
export function namespaceInterceptor(namespace: string): Interceptor {
  return (next) => async (req) => {
    if (!req.header.has(NAMESPACE_HEADER)) req.header.set(NAMESPACE_HEADER, namespace);
    return next(req);
  };
}

export interface Served {
  readonly root: string;
  readonly local: LocalContentStore;
  readonly transport: Transport;
  cleanup(): Promise<void>;
}

/** A local store in a temp dir served by contentService over an in-memory Connect transport. */
export async function serveLocal(
  options: { namespace?: string; store?: (local: LocalContentStore) => ContentStore } = {},
): Promise<Served> {
  const root = await mkdtemp(join(tmpdir(), "berth-content-"));
  const local = createLocalStore({ root });
  const store = options.store ? options.store(local) : local;
  const transport = createRouterTransport((router) => router.service(Content, contentService(store)), {
    router: { interceptors: [errorInterceptor] },
    transport: { interceptors: options.namespace === undefined ? [] : [namespaceInterceptor(options.namespace)] },
  });
  return {
    root,
    local,
    transport,
    cleanup: async () => {
      await local.close();
      await rm(root, { recursive: true, force: true });
    },
  };
}

import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { Diff } from "@berth/api/services/diff/v1";
import type { ContentStore } from "@berth/content-store";
import { createLocalStore } from "@berth/content-store/local";
import { toConnectError } from "@berth/errdefs/connect";
import { type Interceptor, type Transport, createRouterTransport } from "@connectrpc/connect";
import type { Differ } from "../src/differ.js";
import { diffService } from "../src/service/index.js";
import { createWalkingDiffer } from "../src/walking/index.js";

/** What the daemon's interceptor does: typed errors become gRPC codes. */
const errorInterceptor: Interceptor = (next) => async (req) => {
  try {
    return await next(req);
  } catch (err) {
    throw toConnectError(err);
  }
};

export function serveDiff(differ: Differ): Transport {
  return createRouterTransport((router) => router.service(Diff, diffService([differ], { requireNamespace: true })), {
    router: { interceptors: [errorInterceptor] },
  });
}

export interface Env {
  dir: string;
  store: ContentStore;
  differ: Differ;
  cleanup(): Promise<void>;
}

export async function makeEnv(): Promise<Env> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "berth-differ-"));
  const store = createLocalStore({ root: path.join(dir, "content") });
  const differ = createWalkingDiffer({ content: store, tempMountDir: path.join(dir, "tmpmounts") });
  return { dir, store, differ, cleanup: () => fs.rm(dir, { recursive: true, force: true }) };
}

export async function putBlob(store: ContentStore, data: Buffer, digest: string): Promise<void> {
  const w = await store.writer({ namespace: "default" }, { ref: `put-${digest}` });
  await w.write(data);
  await w.commit(data.length, digest);
}

import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Snapshots } from "@berth/api/services/snapshots/v1";
import { toConnectError } from "@berth/errdefs/connect";
import { type Interceptor, type StreamResponse, type Transport, createRouterTransport } from "@connectrpc/connect";
import { type SnapshotsServiceOptions, snapshotsService } from "../src/service/index.js";
import type { Snapshotter } from "../src/snapshotter.js";
import type { SnapshotterSuiteFactory } from "../src/testsuite/index.js";

export async function tempRoot(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

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

/** Snapshotters served by snapshotsService over an in-memory Connect transport. */
export function serve(
  snapshotters: ReadonlyMap<string, Snapshotter>,
  options: SnapshotsServiceOptions = {},
): Transport {
  return createRouterTransport((router) => router.service(Snapshots, snapshotsService(snapshotters, options)), {
    router: { interceptors: [errorInterceptor] },
  });
}

export async function removeRoot(root: string): Promise<void> {
  await rm(root, { recursive: true, force: true });
}

/** A snapshotterSuite factory: `create` on a fresh temp root; cleanup closes the snapshotter and removes the root. */
export function onTempRoot(prefix: string, create: (root: string) => Snapshotter): SnapshotterSuiteFactory {
  return async () => {
    const root = await tempRoot(prefix);
    const snapshotter = create(root);
    return {
      snapshotter,
      cleanup: async () => {
        await snapshotter.close();
        await removeRoot(root);
      },
    };
  };
}

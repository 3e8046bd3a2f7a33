/**
 * berth.services.pull.v1.Pull: the daemon pulls an image itself (resolve, fetch into its content store under a
 * lease, unpack with its own differ while later blobs download, register the image) and streams progress.
 * Ending the call cancels the pull. Credentials come with the request, are used for their host only, and are
 * never logged.
 */
import { stat } from "node:fs/promises";
import type {
  BlobProgressSchema,
  PullProgressSchema,
  PullRequest,
  Pull as PullService,
} from "@berth/api/services/pull/v1";
import { BlobProgress_State } from "@berth/api/services/pull/v1";
import type { Ctx } from "@berth/content-store";
import type { Applier } from "@berth/diff";
import { InvalidArgumentError, isNotFound } from "@berth/errdefs";
import type { Publisher } from "@berth/events";
import { requireNamespace } from "@berth/identifiers";
import * as platforms from "@berth/images/platforms";
import { type ImageRegistrar, type PullProgressEvent, type PullResult, pullImage } from "@berth/images/pull";
import { type Credentials, createResolver, parseReference } from "@berth/images/remotes";
import { type MetadataDb, generateLeaseId } from "@berth/metadata";
import { createImagePublished, updateImagePublished } from "@berth/metadata/service";
import type { Logger } from "@berth/plugin";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";

export interface PullServiceDeps {
  readonly db: MetadataDb;
  readonly applier: Applier;
  readonly events: Publisher;
  readonly log: Logger;
  /** Aborted at daemon shutdown: pulls in flight stop. */
  readonly signal: AbortSignal;
}

/** Bounds on what a request may carry (a hostile client cannot make the daemon hold or scan more). */
const MAX_CREDENTIALS = 64;
const MAX_CREDENTIAL_FIELD = 16 << 10;
const MAX_CONCURRENT_DOWNLOADS = 32;

const STATES: Record<PullProgressEvent["state"], BlobProgress_State> = {
  resolved: BlobProgress_State.RESOLVING,
  waiting: BlobProgress_State.WAITING,
  downloading: BlobProgress_State.DOWNLOADING,
  exists: BlobProgress_State.EXISTS,
  done: BlobProgress_State.DONE,
};

type ProgressInit = MessageInitShape<typeof PullProgressSchema>;

/** The request's credentials by host; InvalidArgument for too many or oversized ones (never echoing them). */
function credentialsByHost(req: PullRequest): Map<string, Credentials> {
  if (req.credentials.length > MAX_CREDENTIALS) {
    throw new InvalidArgumentError(`too many credentials: ${req.credentials.length} (at most ${MAX_CREDENTIALS})`);
  }
  const byHost = new Map<string, Credentials>();
  for (const c of req.credentials) {
    if (c.host === "" || c.host.length > 255 || /[\s/]/.test(c.host)) {
      throw new InvalidArgumentError("credentials: invalid host");
    }
    if (c.username.length > MAX_CREDENTIAL_FIELD || c.secret.length > MAX_CREDENTIAL_FIELD) {
      throw new InvalidArgumentError(`credentials for ${c.host}: too long`);
    }
    byHost.set(c.host, { username: c.username, secret: c.secret });
  }
  return byHost;
}

/** Creates or moves the image in the metadata store and publishes `/images/create|update` as the Images service does. */
function imageRegistrar(db: MetadataDb, events: Publisher): ImageRegistrar {
  return {
    async register(ctx, name, target) {
      const image = {
        name,
        labels: {},
        target: {
          mediaType: target.mediaType,
          digest: target.digest,
          size: target.size,
          annotations: { ...(target.annotations ?? {}) },
        },
      };
      try {
        updateImagePublished(db.images, events, ctx.namespace, image, ["target"]);
      } catch (err) {
        if (!isNotFound(err)) throw err;
        createImagePublished(db.images, events, ctx.namespace, image);
      }
    },
  };
}

/** Checks the request and turns it into pull arguments: InvalidArgument for a bad one, NotFound for an unknown snapshotter. */
async function prepare(req: PullRequest, deps: PullServiceDeps, ns: string, signal: AbortSignal) {
  if (req.reference === "") throw new InvalidArgumentError("reference is required");
  parseReference(req.reference);
  if (req.maxConcurrentDownloads > MAX_CONCURRENT_DOWNLOADS) {
    throw new InvalidArgumentError(`max_concurrent_downloads: at most ${MAX_CONCURRENT_DOWNLOADS}`);
  }
  if (req.hostsDir !== "") {
    const st = await stat(req.hostsDir).catch(() => undefined);
    if (st === undefined || !st.isDirectory()) {
      throw new InvalidArgumentError(
        `hosts dir ${JSON.stringify(req.hostsDir)}: no such directory on the daemon's host`,
      );
    }
  }
  const byHost = credentialsByHost(req);
  const resolver = createResolver({
    credentials: (host) => byHost.get(host),
    ...(req.plainHttp ? { plainHttp: true } : {}),
    ...(req.skipVerify ? { skipVerify: true } : {}),
    ...(req.hostsDir !== "" ? { hostsDir: req.hostsDir } : {}),
  });
  const platform = req.platform === "" ? undefined : platforms.parse(req.platform);
  const snapshotterName = req.snapshotter === "" ? "overlayfs" : req.snapshotter;
  const ctx: Ctx = { namespace: ns, signal };
  const unpack = req.unpack
    ? {
        snapshotter: deps.db.snapshotter(snapshotterName),
        applier: deps.applier,
        snapshotterName,
        platform: platform ? platforms.only(platform) : platforms.defaultMatcher(),
      }
    : undefined;
  return {
    ctx,
    resolver,
    snapshotterName,
    options: {
      concurrency: req.maxConcurrentDownloads === 0 ? 3 : req.maxConcurrentDownloads,
      ...(req.allPlatforms ? { allPlatforms: true } : {}),
      ...(platform ? { platform: platforms.ordered(platform) } : {}),
      ...(unpack ? { unpack } : {}),
    },
  };
}

export function pullService(deps: PullServiceDeps): ServiceImpl<typeof PullService> {
  return {
    async *pull(req, hctx): AsyncGenerator<ProgressInit> {
      const ns = requireNamespace(hctx.requestHeader);
      // the client's call ending (Ctrl-C, disconnect) or the daemon stopping cancels the pull
      const stop = new AbortController();
      const signal = AbortSignal.any([hctx.signal, deps.signal, stop.signal]);
      const { ctx, resolver, snapshotterName, options } = await prepare(req, deps, ns, signal);
      deps.log.info({ namespace: ns, ref: req.reference, unpack: req.unpack }, "pulling image");
      const started = performance.now();

      // progress is batched: whatever arrived since the last message goes out in the next one
      let queue: Array<MessageInitShape<typeof BlobProgressSchema>> = [];
      let wake: (() => void) | undefined;
      const notify = () => {
        const w = wake;
        wake = undefined;
        w?.();
      };
      let settled = false;
      let result: PullResult | undefined;
      let failure: unknown;
      const run = pullImage(
        ctx,
        {
          content: deps.db.content,
          resolver,
          leases: {
            create: async (c, o) => deps.db.leases.create(c.namespace, { id: generateLeaseId(), labels: o.labels }),
            delete: async (c, id) => deps.db.leases.delete(c.namespace, id),
          },
          images: imageRegistrar(deps.db, deps.events),
        },
        req.reference,
        {
          ...options,
          onProgress(e) {
            queue.push({
              digest: e.desc.digest,
              mediaType: e.desc.mediaType,
              state: STATES[e.state],
              offset: BigInt(e.offset),
              total: BigInt(e.desc.size),
            });
            notify();
          },
        },
      );
      run
        .then(
          (r) => {
            result = r;
          },
          (err: unknown) => {
            failure = err;
          },
        )
        .finally(() => {
          settled = true;
          notify();
        });
      try {
        for (;;) {
          if (queue.length > 0) {
            const blobs = queue;
            queue = [];
            yield { blobs };
            continue;
          }
          if (settled) break;
          await new Promise<void>((resolve) => {
            wake = resolve;
          });
        }
      } finally {
        // a client that stops reading ends the generator early: the pull must not go on unobserved
        if (!settled) {
          stop.abort(new Error("pull call ended"));
          await run.catch(() => {});
        }
      }
      if (failure !== undefined) {
        deps.log.warn(
          { namespace: ns, ref: req.reference, err: failure instanceof Error ? failure.message : String(failure) },
          "pull failed",
        );
        throw failure;
      }
      const r = result as PullResult;
      deps.log.info(
        {
          namespace: ns,
          ref: req.reference,
          fetched: r.fetched,
          existing: r.existing,
          ms: Math.round(performance.now() - started),
        },
        "pulled image",
      );
      yield {
        image: {
          name: r.name,
          target: {
            mediaType: r.target.mediaType,
            digest: r.target.digest,
            size: BigInt(r.target.size),
            annotations: { ...(r.target.annotations ?? {}) },
          },
          fetched: r.fetched,
          existing: r.existing,
        },
        ...(r.unpacked
          ? {
              unpack: {
                manifest: r.unpacked.manifest.digest,
                snapshotter: snapshotterName,
                chainId: r.unpacked.chainID,
                layersApplied: r.unpacked.applied,
              },
            }
          : {}),
      };
    },
  };
}

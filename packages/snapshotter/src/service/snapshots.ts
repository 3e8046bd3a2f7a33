import { timestampFromDate } from "@berth/api";
import {
  type InfoSchema,
  Kind as KindPb,
  type MountsResponseSchema,
  type Snapshots,
} from "@berth/api/services/snapshots/v1";
import { InvalidArgumentError, NotImplementedError } from "@berth/errdefs";
import { leaseFromHeaders, namespaceFromHeaders, requireNamespace } from "@berth/identifiers";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { type Ctx, type Info, Kind, type Mount, type Snapshotter, isCleaner } from "../snapshotter.js";

type InfoInit = MessageInitShape<typeof InfoSchema>;
type MountInit = NonNullable<MessageInitShape<typeof MountsResponseSchema>["mounts"]>[number];

export interface SnapshotsServiceOptions {
  /** Fail calls without a namespace with FailedPrecondition (the daemon's namespaced service does). */
  readonly requireNamespace?: boolean;
  /** Infos per List message (containerd: 100). */
  readonly listBatchSize?: number;
  /** Called after a successful Prepare (the daemon publishes `/snapshot/prepare` here). */
  readonly onPrepare?: (ctx: Ctx, e: { snapshotter: string; key: string; parent: string }) => void;
  /** Called after a successful Commit (`/snapshot/commit`). */
  readonly onCommit?: (ctx: Ctx, e: { snapshotter: string; key: string; name: string }) => void;
  /** Called after a successful Remove (`/snapshot/remove`). */
  readonly onRemove?: (ctx: Ctx, e: { snapshotter: string; key: string }) => void;
}

const KIND_TO_PROTO: Record<Kind, KindPb> = {
  [Kind.View]: KindPb.VIEW,
  [Kind.Active]: KindPb.ACTIVE,
  [Kind.Committed]: KindPb.COMMITTED,
};

export function kindToProto(kind: Kind): KindPb {
  return KIND_TO_PROTO[kind];
}

export function infoToProto(info: Info): InfoInit {
  return {
    name: info.name,
    parent: info.parent,
    kind: kindToProto(info.kind),
    createdAt: timestampFromDate(info.createdAt),
    updatedAt: timestampFromDate(info.updatedAt),
    labels: { ...info.labels },
  };
}

export function mountToProto(m: Mount): MountInit {
  return { type: m.type, source: m.source, target: m.target ?? "", options: [...m.options] };
}

/** The Ctx of a call: namespace (`""` when absent unless required), lease, and the call's signal. */
export function ctxFromHandler(hc: HandlerContext, required = false): Ctx {
  const namespace = required ? requireNamespace(hc.requestHeader) : (namespaceFromHeaders(hc.requestHeader) ?? "");
  const lease = leaseFromHeaders(hc.requestHeader);
  return lease === undefined ? { namespace, signal: hc.signal } : { namespace, lease, signal: hc.signal };
}

/**
 * containerd.services.snapshots.v1.Snapshots over snapshotters by name (what an external snapshotter
 * process serves, and the daemon's service without its metadata layer). Errors are thrown as typed errdefs
 * errors (the server's interceptor maps them to gRPC codes).
 */
export function snapshotsService(
  snapshotters: ReadonlyMap<string, Snapshotter>,
  options: SnapshotsServiceOptions = {},
): ServiceImpl<typeof Snapshots> {
  const batchSize = Math.max(1, options.listBatchSize ?? 100);
  const get = (name: string): Snapshotter => {
    if (name === "") throw new InvalidArgumentError("snapshotter argument missing");
    const sn = snapshotters.get(name);
    if (sn === undefined) throw new InvalidArgumentError(`snapshotter not loaded: ${name}`);
    return sn;
  };
  const ctxOf = (hc: HandlerContext) => ctxFromHandler(hc, options.requireNamespace ?? false);

  return {
    async prepare(req, hc) {
      const ctx = ctxOf(hc);
      const mounts = await get(req.snapshotter).prepare(ctx, req.key, req.parent, { labels: { ...req.labels } });
      options.onPrepare?.(ctx, { snapshotter: req.snapshotter, key: req.key, parent: req.parent });
      return { mounts: mounts.map(mountToProto) };
    },

    async view(req, hc) {
      const ctx = ctxOf(hc);
      const mounts = await get(req.snapshotter).view(ctx, req.key, req.parent, { labels: { ...req.labels } });
      return { mounts: mounts.map(mountToProto) };
    },

    async mounts(req, hc) {
      const mounts = await get(req.snapshotter).mounts(ctxOf(hc), req.key);
      return { mounts: mounts.map(mountToProto) };
    },

    async commit(req, hc) {
      const ctx = ctxOf(hc);
      await get(req.snapshotter).commit(ctx, req.name, req.key, { labels: { ...req.labels } });
      options.onCommit?.(ctx, { snapshotter: req.snapshotter, key: req.key, name: req.name });
      return {};
    },

    async remove(req, hc) {
      const ctx = ctxOf(hc);
      await get(req.snapshotter).remove(ctx, req.key);
      options.onRemove?.(ctx, { snapshotter: req.snapshotter, key: req.key });
      return {};
    },

    async stat(req, hc) {
      const info = await get(req.snapshotter).stat(ctxOf(hc), req.key);
      return { info: infoToProto(info) };
    },

    async update(req, hc) {
      if (req.info === undefined) throw new InvalidArgumentError("info is required");
      const paths = req.updateMask?.paths ?? [];
      const info = await get(req.snapshotter).update(
        ctxOf(hc),
        { name: req.info.name, labels: { ...req.info.labels } },
        paths,
      );
      return { info: infoToProto(info) };
    },

    async *list(req, hc) {
      const sn = get(req.snapshotter);
      let batch: InfoInit[] = [];
      const infos: InfoInit[][] = [];
      await sn.walk(
        ctxOf(hc),
        (info) => {
          batch.push(infoToProto(info));
          if (batch.length >= batchSize) {
            infos.push(batch);
            batch = [];
          }
        },
        req.filters,
      );
      if (batch.length > 0) infos.push(batch);
      for (const info of infos) yield { info };
    },

    async usage(req, hc) {
      const usage = await get(req.snapshotter).usage(ctxOf(hc), req.key);
      return { size: BigInt(usage.size), inodes: BigInt(usage.inodes) };
    },

    async cleanup(req, hc) {
      const sn = get(req.snapshotter);
      if (!isCleaner(sn)) throw new NotImplementedError(`snapshotter ${req.snapshotter} does not implement cleanup`);
      await sn.cleanup(ctxOf(hc));
      return {};
    },
  };
}

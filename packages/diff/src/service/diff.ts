import type { Diff } from "@berth/api/services/diff/v1";
import type { Descriptor as DescriptorPb, Mount as MountPb } from "@berth/api/types";
import { InvalidArgumentError, isNotImplemented } from "@berth/errdefs";
import { leaseFromHeaders, namespaceFromHeaders, requireNamespace } from "@berth/identifiers";
import type { Mount } from "@berth/snapshotter";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import type { Ctx, Differ, LayerDescriptor, ProcessorPayload } from "../differ.js";

export interface DiffServiceOptions {
  /** Fail calls without a namespace with FailedPrecondition (the daemon's service does). */
  readonly requireNamespace?: boolean;
}

export function mountFromProto(pb: MountPb): Mount {
  const m = { type: pb.type, source: pb.source, options: [...pb.options] };
  return pb.target === "" ? m : { ...m, target: pb.target };
}

export function descriptorFromProto(pb: DescriptorPb | undefined): LayerDescriptor {
  if (pb === undefined) throw new InvalidArgumentError("diff descriptor is required");
  const d = { mediaType: pb.mediaType, digest: pb.digest, size: Number(pb.size) };
  return Object.keys(pb.annotations).length > 0 ? { ...d, annotations: { ...pb.annotations } } : d;
}

export function descriptorToProto(d: LayerDescriptor) {
  return { mediaType: d.mediaType, digest: d.digest, size: BigInt(d.size), annotations: { ...(d.annotations ?? {}) } };
}

function ctxOf(hc: HandlerContext, required: boolean): Ctx {
  const namespace = required ? requireNamespace(hc.requestHeader) : (namespaceFromHeaders(hc.requestHeader) ?? "");
  const lease = leaseFromHeaders(hc.requestHeader);
  return lease === undefined ? { namespace, signal: hc.signal } : { namespace, lease, signal: hc.signal };
}

/**
 * containerd.services.diff.v1.Diff over differs tried in order (containerd's `default = ["walking"]`): the
 * first that does not answer NotImplemented wins. Errors are thrown typed; the server maps them to codes.
 */
export function diffService(differs: readonly Differ[], options: DiffServiceOptions = {}): ServiceImpl<typeof Diff> {
  if (differs.length === 0) throw new InvalidArgumentError("diff service: no differs");
  const required = options.requireNamespace ?? false;

  async function first<T>(call: (d: Differ) => Promise<T>): Promise<T> {
    let last: unknown;
    for (const d of differs) {
      try {
        return await call(d);
      } catch (err) {
        if (!isNotImplemented(err)) throw err;
        last = err;
      }
    }
    throw last;
  }

  return {
    async apply(req, hc) {
      const ctx = ctxOf(hc, required);
      const desc = descriptorFromProto(req.diff);
      const payloads: Record<string, ProcessorPayload> = {};
      for (const [k, v] of Object.entries(req.payloads)) payloads[k] = { typeUrl: v.typeUrl, value: v.value };
      const mounts = req.mounts.map(mountFromProto);
      const applied = await first((d) => d.apply(ctx, desc, mounts, { payloads }));
      return { applied: descriptorToProto(applied) };
    },

    async diff(req, hc) {
      const ctx = ctxOf(hc, required);
      const left = req.left.map(mountFromProto);
      const right = req.right.map(mountFromProto);
      const opts = {
        ...(req.mediaType ? { mediaType: req.mediaType } : {}),
        ...(req.ref ? { reference: req.ref } : {}),
        ...(Object.keys(req.labels).length > 0 ? { labels: { ...req.labels } } : {}),
      };
      const desc = await first((d) => d.compare(ctx, left, right, opts));
      return { diff: descriptorToProto(desc) };
    },
  };
}

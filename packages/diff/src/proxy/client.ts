import { Diff } from "@berth/api/services/diff/v1";
import type { Descriptor as DescriptorPb } from "@berth/api/types";
import { UnknownError } from "@berth/errdefs";
import { callTyped } from "@berth/errdefs/connect";
import { LEASE_HEADER, NAMESPACE_HEADER } from "@berth/identifiers";
import type { Mount } from "@berth/snapshotter";
import { type CallOptions, type Transport, createClient } from "@connectrpc/connect";
import type { Ctx, Differ, LayerDescriptor } from "../differ.js";

function callOptions(ctx: Ctx): CallOptions {
  const headers: Record<string, string> = {};
  if (ctx.namespace) headers[NAMESPACE_HEADER] = ctx.namespace;
  if (ctx.lease) headers[LEASE_HEADER] = ctx.lease;
  return ctx.signal === undefined ? { headers } : { headers, signal: ctx.signal };
}

function mountToProto(m: Mount) {
  return { type: m.type, source: m.source, target: m.target ?? "", options: [...m.options] };
}

function descriptorOf(pb: DescriptorPb | undefined, what: string): LayerDescriptor {
  if (pb === undefined) throw new UnknownError(`diff service answered ${what} without a descriptor`);
  const d = { mediaType: pb.mediaType, digest: pb.digest, size: Number(pb.size) };
  return Object.keys(pb.annotations).length > 0 ? { ...d, annotations: { ...pb.annotations } } : d;
}

/**
 * A differ over containerd's Diff gRPC service (the daemon's, or containerd's): the same Applier and Comparer
 * as the in-process walking differ, errors typed as errdefs kinds.
 */
export function createDiffClient(transport: Transport): Differ {
  const client = createClient(Diff, transport);
  return {
    async apply(ctx, desc, mounts, options = {}) {
      const payloads: Record<string, { typeUrl: string; value: Uint8Array }> = {};
      for (const [k, v] of Object.entries(options.payloads ?? {})) payloads[k] = { typeUrl: v.typeUrl, value: v.value };
      const res = await callTyped(() =>
        client.apply(
          {
            diff: {
              mediaType: desc.mediaType,
              digest: desc.digest,
              size: BigInt(desc.size),
              annotations: { ...(desc.annotations ?? {}) },
            },
            mounts: mounts.map(mountToProto),
            payloads,
          },
          callOptions(ctx),
        ),
      );
      return descriptorOf(res.applied, "Apply");
    },

    async compare(ctx, lower, upper, options = {}) {
      const res = await callTyped(() =>
        client.diff(
          {
            left: lower.map(mountToProto),
            right: upper.map(mountToProto),
            mediaType: options.mediaType ?? "",
            ref: options.reference ?? "",
            labels: { ...(options.labels ?? {}) },
          },
          callOptions(ctx),
        ),
      );
      return descriptorOf(res.diff, "Diff");
    },
  };
}

import { dateFromTimestamp } from "@berth/api";
import { type Info as InfoPb, Kind as KindPb, Snapshots } from "@berth/api/services/snapshots/v1";
import type { Mount as MountPb } from "@berth/api/types";
import { UnknownError } from "@berth/errdefs";
import { callTyped, fromConnectError } from "@berth/errdefs/connect";
import { LEASE_HEADER, NAMESPACE_HEADER } from "@berth/identifiers";
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { type CallOptions, type Transport, createClient } from "@connectrpc/connect";
import { type Cleaner, type Ctx, type Info, Kind, type Mount, type Snapshotter } from "../snapshotter.js";

/** Go's zero time, what an unset timestamp reads as. */
const GO_ZERO_DATE_MS = -62135596800000;

function dateOf(ts: Timestamp | undefined): Date {
  return dateFromTimestamp(ts) ?? new Date(GO_ZERO_DATE_MS);
}

export function kindFromProto(kind: KindPb): Kind {
  switch (kind) {
    case KindPb.ACTIVE:
      return Kind.Active;
    case KindPb.VIEW:
      return Kind.View;
    case KindPb.COMMITTED:
      return Kind.Committed;
    default:
      throw new UnknownError(`snapshot kind ${kind} is not known`);
  }
}

export function infoFromProto(pb: InfoPb | undefined): Info {
  if (pb === undefined) throw new UnknownError("snapshots service answered without info");
  return {
    name: pb.name,
    parent: pb.parent,
    kind: kindFromProto(pb.kind),
    createdAt: dateOf(pb.createdAt),
    updatedAt: dateOf(pb.updatedAt),
    labels: { ...pb.labels },
  };
}

export function mountFromProto(pb: MountPb): Mount {
  const m = { type: pb.type, source: pb.source, options: [...pb.options] };
  return pb.target === "" ? m : { ...m, target: pb.target };
}

/** Per-call options: the namespace and lease of the Ctx as containerd's headers, and its signal. */
function callOptions(ctx: Ctx): CallOptions {
  const headers: Record<string, string> = {};
  if (ctx.namespace) headers[NAMESPACE_HEADER] = ctx.namespace;
  if (ctx.lease) headers[LEASE_HEADER] = ctx.lease;
  return ctx.signal === undefined ? { headers } : { headers, signal: ctx.signal };
}

async function* typedStream<T>(source: AsyncIterable<T>): AsyncIterable<T> {
  try {
    yield* source;
  } catch (err) {
    throw fromConnectError(err);
  }
}

/**
 * A Snapshotter over containerd's Snapshots gRPC service, for the snapshotter `name` there (an external
 * snapshotter, a `proxy_plugins` entry, or the daemon's from a client). Errors come back typed, so
 * `isNotFound` and friends work as in-process. Cleanup answers NotImplemented when the server has none.
 */
export function createSnapshotterClient(transport: Transport, name: string): Snapshotter & Cleaner {
  const client = createClient(Snapshots, transport);
  const snapshotter = name;
  return {
    async stat(ctx, key) {
      const res = await callTyped(() => client.stat({ snapshotter, key }, callOptions(ctx)));
      return infoFromProto(res.info);
    },

    async update(ctx, info, fieldpaths) {
      const res = await callTyped(() =>
        client.update(
          {
            snapshotter,
            info: { name: info.name, labels: { ...info.labels } },
            ...(fieldpaths === undefined ? {} : { updateMask: { paths: [...fieldpaths] } }),
          },
          callOptions(ctx),
        ),
      );
      return infoFromProto(res.info);
    },

    async usage(ctx, key) {
      const res = await callTyped(() => client.usage({ snapshotter, key }, callOptions(ctx)));
      return { size: Number(res.size), inodes: Number(res.inodes) };
    },

    async mounts(ctx, key) {
      const res = await callTyped(() => client.mounts({ snapshotter, key }, callOptions(ctx)));
      return res.mounts.map(mountFromProto);
    },

    async prepare(ctx, key, parent, options) {
      const labels = { ...options?.labels };
      const res = await callTyped(() => client.prepare({ snapshotter, key, parent, labels }, callOptions(ctx)));
      return res.mounts.map(mountFromProto);
    },

    async view(ctx, key, parent, options) {
      const labels = { ...options?.labels };
      const res = await callTyped(() => client.view({ snapshotter, key, parent, labels }, callOptions(ctx)));
      return res.mounts.map(mountFromProto);
    },

    async commit(ctx, name, key, options) {
      const labels = { ...options?.labels };
      await callTyped(() => client.commit({ snapshotter, name, key, labels }, callOptions(ctx)));
    },

    async remove(ctx, key) {
      await callTyped(() => client.remove({ snapshotter, key }, callOptions(ctx)));
    },

    async walk(ctx, fn, filters) {
      const stream = client.list({ snapshotter, filters: [...(filters ?? [])] }, callOptions(ctx));
      for await (const res of typedStream(stream)) {
        for (const info of res.info) await fn(infoFromProto(info));
      }
    },

    async cleanup(ctx) {
      await callTyped(() => client.cleanup({ snapshotter }, callOptions(ctx)));
    },

    async close() {},
  };
}

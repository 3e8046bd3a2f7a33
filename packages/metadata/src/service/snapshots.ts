import { packAny } from "@berth/api";
import { SnapshotCommitSchema, SnapshotPrepareSchema, SnapshotRemoveSchema } from "@berth/api/events";
import { Snapshots } from "@berth/api/services/snapshots/v1";
import { EventsPlugin } from "@berth/events";
import { GrpcServicePlugin, definePlugin } from "@berth/plugin";
import { snapshotsService } from "@berth/snapshotter/service";
import { create } from "@bufbuild/protobuf";
import { MetadataPlugin } from "../metadata.js";

/**
 * `io.containerd.grpc.v1.snapshots`: the Snapshots service over the namespaced snapshotters of the metadata
 * database (a namespace sees only its own snapshots; calls need a namespace); Prepare, Commit and Remove publish
 * `/snapshot/prepare`, `/snapshot/commit` and `/snapshot/remove`.
 */
export const snapshotsGrpcPlugin = definePlugin({
  type: GrpcServicePlugin,
  id: "snapshots",
  requires: [MetadataPlugin, EventsPlugin],
  init(ic) {
    const events = ic.getSingle(EventsPlugin);
    const impl = snapshotsService(ic.getSingle(MetadataPlugin).snapshotters, {
      requireNamespace: true,
      onPrepare: (ctx, e) =>
        events.publish(
          ctx.namespace,
          "/snapshot/prepare",
          packAny(SnapshotPrepareSchema, create(SnapshotPrepareSchema, { key: e.key, parent: e.parent })),
        ),
      onCommit: (ctx, e) =>
        events.publish(
          ctx.namespace,
          "/snapshot/commit",
          packAny(SnapshotCommitSchema, create(SnapshotCommitSchema, { key: e.key, name: e.name })),
        ),
      onRemove: (ctx, e) =>
        events.publish(
          ctx.namespace,
          "/snapshot/remove",
          packAny(SnapshotRemoveSchema, create(SnapshotRemoveSchema, { key: e.key })),
        ),
    });
    return { register: (router) => router.service(Snapshots, impl) };
  },
});

import { EventsPlugin } from "@berth/events";
import { GrpcServicePlugin, definePlugin } from "@berth/plugin";
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
    const snapshotters = ic.getSingle(MetadataPlugin).snapshotters;
    return {
      lazy: {
        // Descriptor, event schemas and implementation load on the first call.
        "containerd.services.snapshots.v1.Snapshots": async () => {
          const [{ packAny }, ev, { Snapshots }, { snapshotsService }, { create }] = await Promise.all([
            import("@berth/api"),
            import("@berth/api/events"),
            import("@berth/api/services/snapshots/v1"),
            import("@berth/snapshotter/service"),
            import("@bufbuild/protobuf"),
          ]);
          const impl = snapshotsService(snapshotters, {
            requireNamespace: true,
            onPrepare: (ctx, e) =>
              events.publish(
                ctx.namespace,
                "/snapshot/prepare",
                packAny(ev.SnapshotPrepareSchema, create(ev.SnapshotPrepareSchema, { key: e.key, parent: e.parent })),
              ),
            onCommit: (ctx, e) =>
              events.publish(
                ctx.namespace,
                "/snapshot/commit",
                packAny(ev.SnapshotCommitSchema, create(ev.SnapshotCommitSchema, { key: e.key, name: e.name })),
              ),
            onRemove: (ctx, e) =>
              events.publish(
                ctx.namespace,
                "/snapshot/remove",
                packAny(ev.SnapshotRemoveSchema, create(ev.SnapshotRemoveSchema, { key: e.key })),
              ),
          });
          return (router) => router.service(Snapshots, impl);
        },
      },
    };
  },
});

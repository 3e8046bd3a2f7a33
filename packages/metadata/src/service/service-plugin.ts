// Registrations of the metadata-backed gRPC services. Each service's descriptor and implementation load on its
// first call (see GrpcService.lazy): they are a large share of berthd's start-up otherwise.
import { EventsPlugin } from "@berth/events";
import { GrpcServicePlugin, definePlugin } from "@berth/plugin";
import { GcPlugin } from "../gc/plugin.js";
import { MetadataPlugin } from "../metadata.js";

/** `io.containerd.grpc.v1.namespaces`: the Namespaces service; events `/namespaces/create|update|delete`. */
export const namespacesGrpcPlugin = definePlugin({
  type: GrpcServicePlugin,
  id: "namespaces",
  requires: [MetadataPlugin, EventsPlugin],
  init(ic) {
    const store = ic.getSingle(MetadataPlugin).namespaces;
    const events = ic.getSingle(EventsPlugin);
    return {
      lazy: {
        "containerd.services.namespaces.v1.Namespaces": async () => {
          const [{ Namespaces }, { namespacesService }] = await Promise.all([
            import("@berth/api/services/namespaces/v1"),
            import("./namespaces.js"),
          ]);
          return (router) => router.service(Namespaces, namespacesService(store, events));
        },
      },
    };
  },
});

/** `io.containerd.grpc.v1.leases`: the Leases service; `sync` deletes wait for the GC scheduler's run. */
export const leasesGrpcPlugin = definePlugin({
  type: GrpcServicePlugin,
  id: "leases",
  requires: [MetadataPlugin, GcPlugin],
  init(ic) {
    const gc = ic.getByType(GcPlugin).values().next().value;
    const store = ic.getSingle(MetadataPlugin).leases;
    return {
      lazy: {
        "containerd.services.leases.v1.Leases": async () => {
          const [{ Leases }, { leasesService }] = await Promise.all([
            import("@berth/api/services/leases/v1"),
            import("./leases.js"),
          ]);
          const impl = leasesService(store, { ...(gc !== undefined ? { collect: () => gc.collect() } : {}) });
          return (router) => router.service(Leases, impl);
        },
      },
    };
  },
});

/**
 * `io.containerd.grpc.v1.content`: the Content service over the namespaced store in the metadata database, so a
 * namespace sees only its own blobs and labels; deletions publish `/content/delete`.
 */
export const contentGrpcPlugin = definePlugin({
  type: GrpcServicePlugin,
  id: "content",
  requires: [MetadataPlugin, EventsPlugin],
  init(ic) {
    const events = ic.getSingle(EventsPlugin);
    const store = ic.getSingle(MetadataPlugin).content;
    return {
      lazy: {
        "containerd.services.content.v1.Content": async () => {
          const [{ Content }, { contentService }, { packAny }, { ContentDeleteSchema }, { create }] = await Promise.all(
            [
              import("@berth/api/services/content/v1"),
              import("@berth/content-store/service"),
              import("@berth/api"),
              import("@berth/api/events"),
              import("@bufbuild/protobuf"),
            ],
          );
          const impl = contentService(store, {
            onDelete: (ctx, digest) =>
              events.publish(
                ctx.namespace,
                "/content/delete",
                packAny(ContentDeleteSchema, create(ContentDeleteSchema, { digest })),
              ),
          });
          return (router) => router.service(Content, impl);
        },
      },
    };
  },
});

/**
 * `io.containerd.grpc.v1.images`: the Images service over the metadata database's image store; events
 * `/images/create|update|delete`, and `sync` deletes wait for the GC scheduler's run.
 */
export const imagesGrpcPlugin = definePlugin({
  type: GrpcServicePlugin,
  id: "images",
  requires: [MetadataPlugin, EventsPlugin, GcPlugin],
  init(ic) {
    const gc = ic.getByType(GcPlugin).values().next().value;
    const store = ic.getSingle(MetadataPlugin).images;
    const events = ic.getSingle(EventsPlugin);
    return {
      lazy: {
        "containerd.services.images.v1.Images": async () => {
          const [{ Images }, { imagesService }] = await Promise.all([
            import("@berth/api/services/images/v1"),
            import("./images.js"),
          ]);
          const impl = imagesService(store, events, { ...(gc !== undefined ? { collect: () => gc.collect() } : {}) });
          return (router) => router.service(Images, impl);
        },
      },
    };
  },
});

/** `io.containerd.grpc.v1.containers`: the Containers service; events `/containers/create|update|delete`. */
export const containersGrpcPlugin = definePlugin({
  type: GrpcServicePlugin,
  id: "containers",
  requires: [MetadataPlugin, EventsPlugin],
  init(ic) {
    const store = ic.getSingle(MetadataPlugin).containers;
    const events = ic.getSingle(EventsPlugin);
    return {
      lazy: {
        "containerd.services.containers.v1.Containers": async () => {
          const [{ Containers }, { containersService }] = await Promise.all([
            import("@berth/api/services/containers/v1"),
            import("./containers.js"),
          ]);
          return (router) => router.service(Containers, containersService(store, events));
        },
      },
    };
  },
});

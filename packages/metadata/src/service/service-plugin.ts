import { packAny } from "@berth/api";
import { ContentDeleteSchema } from "@berth/api/events";
import { Content } from "@berth/api/services/content/v1";
import { Images } from "@berth/api/services/images/v1";
import { Leases } from "@berth/api/services/leases/v1";
import { contentService } from "@berth/content-store/service";
import { create } from "@bufbuild/protobuf";
import { Namespaces } from "@berth/api/services/namespaces/v1";
import { EventsPlugin } from "@berth/events";
import { GrpcServicePlugin, definePlugin } from "@berth/plugin";
import { GcPlugin } from "../gc/plugin.js";
import { MetadataPlugin } from "../metadata.js";
import { imagesService } from "./images.js";
import { leasesService } from "./leases.js";
import { namespacesService } from "./namespaces.js";

export const namespacesGrpcPlugin = definePlugin({
  type: GrpcServicePlugin,
  id: "namespaces",
  requires: [MetadataPlugin, EventsPlugin],
  init(ic) {
    const impl = namespacesService(ic.getSingle(MetadataPlugin).namespaces, ic.getSingle(EventsPlugin));
    return { register: (router) => router.service(Namespaces, impl) };
  },
});

/** `io.containerd.grpc.v1.leases`: the Leases service; `sync` deletes wait for the GC scheduler's run. */
export const leasesGrpcPlugin = definePlugin({
  type: GrpcServicePlugin,
  id: "leases",
  requires: [MetadataPlugin, GcPlugin],
  init(ic) {
    const gc = ic.getByType(GcPlugin).values().next().value;
    const impl = leasesService(ic.getSingle(MetadataPlugin).leases, {
      ...(gc !== undefined ? { collect: () => gc.collect() } : {}),
    });
    return { register: (router) => router.service(Leases, impl) };
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
    const impl = contentService(ic.getSingle(MetadataPlugin).content, {
      onDelete: (ctx, digest) =>
        events.publish(
          ctx.namespace,
          "/content/delete",
          packAny(ContentDeleteSchema, create(ContentDeleteSchema, { digest })),
        ),
    });
    return { register: (router) => router.service(Content, impl) };
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
    const impl = imagesService(ic.getSingle(MetadataPlugin).images, ic.getSingle(EventsPlugin), {
      ...(gc !== undefined ? { collect: () => gc.collect() } : {}),
    });
    return { register: (router) => router.service(Images, impl) };
  },
});

import { Namespaces } from "@berth/api/services/namespaces/v1";
import { EventsPlugin } from "@berth/events";
import { GrpcServicePlugin, definePlugin } from "@berth/plugin";
import { MetadataPlugin } from "../metadata.js";
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

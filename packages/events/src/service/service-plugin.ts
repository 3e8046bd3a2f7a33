import { Events } from "@berth/api/services/events/v1";
import { GrpcServicePlugin, definePlugin } from "@berth/plugin";
import { EventsPlugin } from "../plugin.js";
import { eventsService } from "./events.js";

export const eventsGrpcPlugin = definePlugin({
  type: GrpcServicePlugin,
  id: "events",
  requires: [EventsPlugin],
  init(ic) {
    const impl = eventsService(ic.getSingle(EventsPlugin), { shutdown: ic.signal });
    return { register: (router) => router.service(Events, impl) };
  },
});

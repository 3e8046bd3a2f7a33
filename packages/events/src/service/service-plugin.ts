import { GrpcServicePlugin, definePlugin } from "@berth/plugin";
import { EventsPlugin } from "../plugin.js";

/** `io.containerd.grpc.v1.events`: the Events service; its descriptor and code load on the first call. */
export const eventsGrpcPlugin = definePlugin({
  type: GrpcServicePlugin,
  id: "events",
  requires: [EventsPlugin],
  init(ic) {
    const exchange = ic.getSingle(EventsPlugin);
    return {
      lazy: {
        "containerd.services.events.v1.Events": async () => {
          const [{ Events }, { eventsService }] = await Promise.all([
            import("@berth/api/services/events/v1"),
            import("./events.js"),
          ]);
          return (router) => router.service(Events, eventsService(exchange, { shutdown: ic.signal }));
        },
      },
    };
  },
});

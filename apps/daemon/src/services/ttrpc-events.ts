import { dateFromTimestamp } from "@berth/api";
import { Events } from "@berth/api/services/ttrpc/events/v1";
import { InvalidArgumentError } from "@berth/errdefs";
import { EventsPlugin } from "@berth/events";
import { definePlugin, pluginType } from "@berth/plugin";
import type { TtrpcServer } from "@berth/ttrpc";

export interface TtrpcService {
  register(server: TtrpcServer): void;
}

/** `io.containerd.ttrpc.v1`: services served on the daemon's ttrpc socket (`<address>.ttrpc`). */
export const TtrpcServicePlugin = pluginType<TtrpcService>("io.containerd.ttrpc.v1");

/** containerd.services.events.ttrpc.v1.Events/Forward: how shims publish task events. */
export const eventsTtrpcPlugin = definePlugin({
  type: TtrpcServicePlugin,
  id: "events",
  requires: [EventsPlugin],
  init(ic) {
    const exchange = ic.getSingle(EventsPlugin);
    return {
      register: (server) =>
        server.registerService(Events, {
          forward(req) {
            const env = req.envelope;
            if (!env?.event) throw new InvalidArgumentError("envelope with event is required");
            exchange.forward({
              timestamp: dateFromTimestamp(env.timestamp) ?? new Date(),
              namespace: env.namespace,
              topic: env.topic,
              event: { typeUrl: env.event.typeUrl, value: env.event.value },
            });
            return {};
          },
        }),
    };
  },
});

import { definePlugin, pluginType } from "@berth/plugin";
import { Exchange } from "./exchange.js";

/** `io.containerd.event.v1`: the daemon's event exchange. */
export const EventsPlugin = pluginType<Exchange>("io.containerd.event.v1");

export const exchangePlugin = definePlugin({
  type: EventsPlugin,
  id: "exchange",
  init: () => new Exchange(),
});

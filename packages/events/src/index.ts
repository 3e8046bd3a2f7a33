export { Exchange } from "./exchange.js";
export type {
  Envelope,
  EventPayload,
  EnvelopeMatcher,
  Forwarder,
  Publisher,
  SubscribeOptions,
  Subscriber,
} from "./exchange.js";
export { envelopeMatcher, filtersReadEventFields } from "./filter.js";
export { EventsPlugin, exchangePlugin } from "./plugin.js";

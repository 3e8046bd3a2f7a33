import { dateFromTimestamp, timestampFromDate } from "@berth/api";
import type { Envelope as EnvelopeMessage, Events } from "@berth/api/services/events/v1";
import { InvalidArgumentError } from "@berth/errdefs";
import { requireNamespace } from "@berth/identifiers";
import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import type { Exchange } from "../exchange.js";
import { envelopeMatcher, filtersReadEventFields } from "../filter.js";
import { EnvelopeSchema } from "@berth/api/services/events/v1";

export interface EventsServiceOptions {
  /** Aborted at daemon shutdown so subscriber streams end. */
  readonly shutdown?: AbortSignal;
}

/** containerd.services.events.v1.Events over an exchange. */
export function eventsService(exchange: Exchange, options: EventsServiceOptions = {}): ServiceImpl<typeof Events> {
  return {
    publish(req, ctx) {
      const namespace = requireNamespace(ctx.requestHeader);
      if (!req.event) throw new InvalidArgumentError("event is required");
      exchange.publish(namespace, req.topic, { typeUrl: req.event.typeUrl, value: req.event.value });
      return {};
    },
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
    async *subscribe(req, ctx) {
      // Decoding events needs every message type of the API: load that registry only when a filter asks.
      const registry = filtersReadEventFields(req.filters)
        ? (await import("@berth/api/registry")).apiRegistry
        : undefined;
      const match = envelopeMatcher(req.filters, registry);
      const signal = options.shutdown ? AbortSignal.any([ctx.signal, options.shutdown]) : ctx.signal;
      for await (const env of exchange.subscribe({ match, signal })) {
        yield toEnvelopeMessage(env);
      }
    },
  };
}

function toEnvelopeMessage(env: {
  timestamp: Date;
  namespace: string;
  topic: string;
  event: { typeUrl: string; value: Uint8Array };
}): EnvelopeMessage {
  return create(EnvelopeSchema, {
    timestamp: timestampFromDate(env.timestamp),
    namespace: env.namespace,
    topic: env.topic,
    event: { typeUrl: env.event.typeUrl, value: env.event.value },
  });
}

import { unpackAny } from "@berth/api";
import { apiRegistry } from "@berth/api/registry";
import { type Adaptor, adaptEnvelope, adaptEventFields, parseAll } from "@berth/filters";
import { toJson } from "@bufbuild/protobuf";
import type { Envelope, EnvelopeMatcher } from "./exchange.js";

/** An adaptor for `event.<field>` that decodes the event only when a filter asks for one of its fields. */
function lazyEventAdaptor(event: Envelope["event"]): Adaptor {
  let decoded: Adaptor | undefined;
  return {
    field(path) {
      if (decoded === undefined) {
        let fields: Record<string, unknown> = {};
        try {
          const msg = unpackAny(apiRegistry, {
            $typeName: "google.protobuf.Any",
            typeUrl: event.typeUrl,
            value: event.value,
          });
          if (msg) {
            const desc = apiRegistry.getMessage(msg.$typeName);
            if (desc) fields = toJson(desc, msg, { useProtoFieldName: true }) as Record<string, unknown>;
          }
        } catch {
          // An event that cannot be decoded has no fields to match.
        }
        decoded = adaptEventFields(fields);
      }
      return decoded.field(path);
    },
  };
}

/**
 * Compiles Subscribe filters (`topic=="/tasks/exit"`, `namespace==default`, `event.container_id==x`) into a
 * matcher. No filters match everything. Throws InvalidArgument on a syntax error, before subscribing.
 */
export function envelopeMatcher(filters: readonly string[]): EnvelopeMatcher | undefined {
  if (filters.length === 0 || filters.every((f) => f === "")) return undefined;
  const filter = parseAll([...filters]);
  return (env) =>
    filter.match(adaptEnvelope({ topic: env.topic, namespace: env.namespace, event: lazyEventAdaptor(env.event) }));
}

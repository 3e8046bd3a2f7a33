import { unpackAny } from "@berth/api";
import { type Adaptor, adaptEnvelope, adaptEventFields, parseAll, parseSelectors } from "@berth/filters";
import { type Registry, toJson } from "@bufbuild/protobuf";
import type { Envelope, EnvelopeMatcher } from "./exchange.js";

/** An adaptor for `event.<field>` that decodes the event only when a filter asks for one of its fields. */
function lazyEventAdaptor(event: Envelope["event"], registry: Registry | undefined): Adaptor {
  let decoded: Adaptor | undefined;
  return {
    field(path) {
      if (decoded === undefined) {
        let fields: Record<string, unknown> = {};
        try {
          const msg =
            registry &&
            unpackAny(registry, {
              $typeName: "google.protobuf.Any",
              typeUrl: event.typeUrl,
              value: event.value,
            });
          if (msg) {
            const desc = registry.getMessage(msg.$typeName);
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

/** Whether any filter reads a field of the event itself (`event.<field>`), so events must be decoded. */
export function filtersReadEventFields(filters: readonly string[]): boolean {
  return filters.some((f) => f !== "" && parseSelectors(f).some((s) => s.fieldpath[0] === "event"));
}

/**
 * Compiles Subscribe filters (`topic=="/tasks/exit"`, `namespace==default`, `event.container_id==x`) into a
 * matcher. No filters match everything. Throws InvalidArgument on a syntax error, before subscribing.
 * `event.<field>` selectors need `registry` to decode events; without it events have no fields.
 */
export function envelopeMatcher(filters: readonly string[], registry?: Registry): EnvelopeMatcher | undefined {
  if (filters.length === 0 || filters.every((f) => f === "")) return undefined;
  const filter = parseAll([...filters]);
  return (env) =>
    filter.match(
      adaptEnvelope({ topic: env.topic, namespace: env.namespace, event: lazyEventAdaptor(env.event, registry) }),
    );
}

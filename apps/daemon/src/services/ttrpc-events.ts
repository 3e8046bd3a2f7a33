import { dateFromTimestamp } from "@berth/api";
import { InvalidArgumentError } from "@berth/errdefs";
import { EventsPlugin } from "@berth/events";
import { definePlugin, pluginType } from "@berth/plugin";
import type { TtrpcMethod, TtrpcServer } from "@berth/ttrpc";

export interface TtrpcService {
  register(server: TtrpcServer): void;
}

/** `io.containerd.ttrpc.v1`: services served on the daemon's ttrpc socket (`<address>.ttrpc`). */
export const TtrpcServicePlugin = pluginType<TtrpcService>("io.containerd.ttrpc.v1");

const EMPTY = new Uint8Array();

/**
 * containerd.services.events.ttrpc.v1.Events/Forward: how shims publish task events. The request schema loads
 * on the first event (descriptors are a large share of start-up), so the method is registered in raw form.
 */
export const eventsTtrpcPlugin = definePlugin({
  type: TtrpcServicePlugin,
  id: "events",
  requires: [EventsPlugin],
  init(ic) {
    const exchange = ic.getSingle(EventsPlugin);
    let forward: Promise<TtrpcMethod> | undefined;
    const load = async (): Promise<TtrpcMethod> => {
      const [{ ForwardRequestSchema }, { fromBinary }] = await Promise.all([
        import("@berth/api/services/ttrpc/events/v1"),
        import("@bufbuild/protobuf"),
      ]);
      return (payload) => {
        let req: ReturnType<typeof fromBinary<typeof ForwardRequestSchema>>;
        try {
          req = fromBinary(ForwardRequestSchema, payload);
        } catch (err) {
          throw new InvalidArgumentError(`unmarshal ${ForwardRequestSchema.typeName}: ${(err as Error).message}`, {
            bare: true,
          });
        }
        const env = req.envelope;
        if (!env?.event) throw new InvalidArgumentError("envelope with event is required");
        exchange.forward({
          timestamp: dateFromTimestamp(env.timestamp) ?? new Date(),
          namespace: env.namespace,
          topic: env.topic,
          event: { typeUrl: env.event.typeUrl, value: env.event.value },
        });
        return EMPTY;
      };
    };
    const ensure = (): Promise<TtrpcMethod> => {
      forward ??= load().catch((err: unknown) => {
        forward = undefined; // the next event tries again
        throw err;
      });
      return forward;
    };
    // Loaded soon after start-up anyway, so a running daemon does not need its files later.
    setTimeout(() => ensure().catch(() => {}), 600).unref();
    return {
      register: (server) =>
        server.register("containerd.services.events.ttrpc.v1.Events", {
          Forward: async (payload, ctx) => (await ensure())(payload, ctx),
        }),
    };
  },
});

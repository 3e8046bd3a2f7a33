import { DiffPlugin } from "@berth/diff";
import { EventsPlugin } from "@berth/events";
import { MetadataPlugin } from "@berth/metadata";
import { GrpcServicePlugin, SkipPluginError, definePlugin } from "@berth/plugin";

/**
 * `io.containerd.grpc.v1.pull`: Berth's Pull service (berth.services.pull.v1.Pull), pulls done by the daemon
 * into its own stores with its own differ (walking first); loaded on first call.
 */
export const pullGrpcPlugin = definePlugin({
  type: GrpcServicePlugin,
  id: "pull",
  requires: [MetadataPlugin, DiffPlugin, EventsPlugin],
  init(ic) {
    const db = ic.getSingle(MetadataPlugin);
    const differs = ic.getByType(DiffPlugin);
    const applier = differs.get("walking") ?? differs.values().next().value;
    const events = ic.getSingle(EventsPlugin);
    if (applier === undefined) throw new SkipPluginError("no differ loaded");
    return {
      lazy: {
        "berth.services.pull.v1.Pull": async () => {
          const [{ Pull }, { pullService }] = await Promise.all([
            import("@berth/api/services/pull/v1"),
            import("./pull-service.js"),
          ]);
          const impl = pullService({ db, applier, events, log: ic.log, signal: ic.signal });
          return (router) => router.service(Pull, impl);
        },
      },
    };
  },
});

import { GrpcServicePlugin, definePlugin } from "@berth/plugin";

/** grpc.health.v1.Health: SERVING while the daemon runs (Watch ends at shutdown); loaded on first call. */
export const healthGrpcPlugin = definePlugin({
  type: GrpcServicePlugin,
  id: "healthcheck",
  init(ic) {
    return {
      lazy: {
        "grpc.health.v1.Health": async () => {
          const { registerHealth } = await import("./health-service.js");
          return (router) => registerHealth(router, ic.signal);
        },
      },
    };
  },
});

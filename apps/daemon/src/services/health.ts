import { Health, HealthCheckResponse_ServingStatus } from "@berth/api/grpc/health/v1";
import { GrpcServicePlugin, definePlugin } from "@berth/plugin";

const SERVING = { status: HealthCheckResponse_ServingStatus.SERVING };

/** grpc.health.v1.Health: SERVING while the daemon runs (Watch ends at shutdown). */
export const healthGrpcPlugin = definePlugin({
  type: GrpcServicePlugin,
  id: "healthcheck",
  init(ic) {
    return {
      register: (router) =>
        router.service(Health, {
          check: () => SERVING,
          async *watch(_req, ctx) {
            yield SERVING;
            const signal = AbortSignal.any([ctx.signal, ic.signal]);
            if (signal.aborted) return;
            await new Promise((resolve) => signal.addEventListener("abort", resolve, { once: true }));
          },
        }),
    };
  },
});

// The Health service implementation; loaded on the service's first call (see health.ts).
import { Health, HealthCheckResponse_ServingStatus } from "@berth/api/grpc/health/v1";
import type { ConnectRouter } from "@connectrpc/connect";

const SERVING = { status: HealthCheckResponse_ServingStatus.SERVING };

/** Adds grpc.health.v1.Health to a router; Watch streams end when `shutdown` aborts. */
export function registerHealth(router: ConnectRouter, shutdown: AbortSignal): void {
  router.service(Health, {
    check: () => SERVING,
    async *watch(_req, ctx) {
      yield SERVING;
      const signal = AbortSignal.any([ctx.signal, shutdown]);
      if (signal.aborted) return;
      await new Promise((resolve) => signal.addEventListener("abort", resolve, { once: true }));
    },
  });
}

// The Introspection service implementation; loaded on the service's first call (see introspection.ts).
import { Introspection, type Plugin } from "@berth/api/services/introspection/v1";
import { adaptPlugin, parseAll } from "@berth/filters";
import type { PluginStatus } from "@berth/plugin";
import type { ConnectRouter } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import { StatusSchema } from "@berth/api/google/rpc";
import { PluginSchema } from "@berth/api/services/introspection/v1";
import { GrpcCode, grpcCodeOf } from "@berth/errdefs";

function toPluginMessage(status: PluginStatus): Plugin {
  const initErr =
    status.state === "skipped" || status.state === "error"
      ? create(StatusSchema, {
          code: status.state === "skipped" ? GrpcCode.Unknown : grpcCodeOf(status.error),
          message: status.error?.message ?? "",
        })
      : undefined;
  return create(PluginSchema, {
    type: status.type,
    id: status.id,
    requires: [...status.requires],
    platforms: status.meta.platforms.map((p) => ({ os: p.os, architecture: p.architecture, variant: p.variant ?? "" })),
    exports: status.meta.exports,
    capabilities: status.meta.capabilities,
    initErr,
  });
}

/** Adds `containerd.services.introspection.v1.Introspection` to a router. */
export function registerIntrospection(
  router: ConnectRouter,
  uuid: string,
  plugins: () => readonly PluginStatus[],
): void {
  router.service(Introspection, {
    plugins(req) {
      const filter = parseAll(req.filters);
      // Read at call time: every plugin, including those loaded after this one.
      return {
        plugins: plugins()
          .filter((p) => filter.match(adaptPlugin(p)))
          .map(toPluginMessage),
      };
    },
    server: () => ({ uuid }),
  });
}

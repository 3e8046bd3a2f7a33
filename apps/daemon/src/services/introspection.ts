import { randomUUID } from "node:crypto";
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Introspection, type Plugin } from "@berth/api/services/introspection/v1";
import { isNotFound } from "@berth/errdefs";
import { adaptPlugin, parseAll } from "@berth/filters";
import { GrpcServicePlugin, type PluginStatus, definePlugin } from "@berth/plugin";
import { create } from "@bufbuild/protobuf";
import { StatusSchema } from "@berth/api/google/rpc";
import { PluginSchema } from "@berth/api/services/introspection/v1";
import { GrpcCode, grpcCodeOf } from "@berth/errdefs";

/** The server UUID, created once and kept under the plugin's root (`<root>/io.containerd.grpc.v1.introspection/uuid`). */
async function loadOrCreateUuid(dir: string): Promise<string> {
  const file = join(dir, "uuid");
  try {
    const text = (await readFile(file, "utf8")).trim();
    if (text) return text;
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
  await mkdir(dir, { recursive: true, mode: 0o711 });
  const uuid = randomUUID();
  await writeFile(`${file}.tmp`, uuid, { mode: 0o644 });
  await rename(`${file}.tmp`, file);
  return uuid;
}

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

export const introspectionGrpcPlugin = definePlugin({
  type: GrpcServicePlugin,
  id: "introspection",
  requires: "*",
  async init(ic) {
    const uuid = await loadOrCreateUuid(ic.rootDir);
    return {
      register: (router) =>
        router.service(Introspection, {
          plugins(req) {
            const filter = parseAll(req.filters);
            // Read at call time: every plugin, including those loaded after this one.
            const plugins = ic
              .plugins()
              .filter((p) => filter.match(adaptPlugin(p)))
              .map(toPluginMessage);
            return { plugins };
          },
          server: () => ({ uuid }),
        }),
    };
  },
});

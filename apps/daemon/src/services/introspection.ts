import { randomUUID } from "node:crypto";
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { isNotFound } from "@berth/errdefs";
import { GrpcServicePlugin, definePlugin } from "@berth/plugin";

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

/** `io.containerd.grpc.v1.introspection`: plugin statuses and the server UUID; the service loads on first call. */
export const introspectionGrpcPlugin = definePlugin({
  type: GrpcServicePlugin,
  id: "introspection",
  requires: "*",
  async init(ic) {
    const uuid = await loadOrCreateUuid(ic.rootDir);
    return {
      lazy: {
        "containerd.services.introspection.v1.Introspection": async () => {
          const { registerIntrospection } = await import("./introspection-service.js");
          return (router) => registerIntrospection(router, uuid, () => ic.plugins());
        },
      },
    };
  },
});

// Plugin registrations only (see walking/ and service/ for the implementations).
import path from "node:path";
import { ContentPlugin } from "@berth/content-store";
import { MetadataPlugin } from "@berth/metadata";
import { GrpcServicePlugin, definePlugin } from "@berth/plugin";
import { DiffPlugin } from "./differ.js";
import { createWalkingDiffer } from "./walking/walking.js";

/** `<blobs>/<alg>/<hex>` for a well-formed digest (the caller has checked the store has it). */
function blobFileOf(blobRoot: string, digest: string): string | undefined {
  const m = /^(sha256|sha384|sha512):([0-9a-f]+)$/.exec(digest);
  return m ? path.join(blobRoot, m[1]!, m[2]!) : undefined;
}

/**
 * `io.containerd.differ.v1.walking`: the walking differ over the namespaced content store, with temporary
 * mounts under `<root>/tmpmounts` (containerd's location).
 */
export const walkingDifferPlugin = definePlugin({
  type: DiffPlugin,
  id: "walking",
  requires: [MetadataPlugin, ContentPlugin],
  init(ic) {
    ic.meta.platforms.push({ os: "linux", architecture: process.arch === "x64" ? "amd64" : process.arch });
    // the local store's blob files, read directly by the apply worker (a proxy content store has none)
    const local = ic.getByType(ContentPlugin).get("content") as { root?: unknown } | undefined;
    const blobRoot = typeof local?.root === "string" ? path.join(local.root, "blobs") : undefined;
    const options = {
      content: ic.getSingle(MetadataPlugin).content,
      tempMountDir: path.join(ic.daemon.root, "tmpmounts"),
      ...(blobRoot !== undefined ? { blobFile: (digest: string) => blobFileOf(blobRoot, digest) } : {}),
      log: ic.log,
    };
    return createWalkingDiffer(options);
  },
});

/** `io.containerd.grpc.v1.diff`: the Diff service over the loaded differs (walking first, as containerd's default). */
export const diffGrpcPlugin = definePlugin({
  type: GrpcServicePlugin,
  id: "diff",
  requires: [DiffPlugin],
  init(ic) {
    const all = ic.getByType(DiffPlugin);
    const walking = all.get("walking");
    const differs = walking
      ? [walking, ...[...all].filter(([id]) => id !== "walking").map(([, d]) => d)]
      : [...all.values()];
    return {
      lazy: {
        "containerd.services.diff.v1.Diff": async () => {
          const [{ Diff }, { diffService }] = await Promise.all([
            import("@berth/api/services/diff/v1"),
            import("./service/diff.js"),
          ]);
          const impl = diffService(differs, { requireNamespace: true });
          return (router) => router.service(Diff, impl);
        },
      },
    };
  },
});

import { Version } from "@berth/api/services/version/v1";
import { GrpcServicePlugin, definePlugin } from "@berth/plugin";

export const versionGrpcPlugin = definePlugin({
  type: GrpcServicePlugin,
  id: "version",
  init(ic) {
    const reply = { version: ic.daemon.version, revision: ic.daemon.revision };
    return { register: (router) => router.service(Version, { version: () => reply }) };
  },
});

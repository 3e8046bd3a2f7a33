// A stand-alone snapshotter process for the proxy_plugins tests: serves containerd's Snapshots service over a
// unix socket for one native snapshotter, as an external snapshotter (a `[proxy_plugins]` entry) would.
// Usage: node snapshotter-server.mjs <socket> <root> <name>
import * as http2 from "node:http2";
import { toConnectError } from "@berth/errdefs/connect";
import { Snapshots } from "@berth/api/services/snapshots/v1";
import { createNativeSnapshotter } from "@berth/snapshotter/native";
import { snapshotsService } from "@berth/snapshotter/service";
import { connectNodeAdapter } from "@connectrpc/connect-node";

const [socket, root, name] = process.argv.slice(2);
const snapshotter = createNativeSnapshotter({ root });
const errors = (next) => async (req) => {
  try {
    return await next(req);
  } catch (err) {
    throw toConnectError(err);
  }
};
const handler = connectNodeAdapter({
  routes: (router) => router.service(Snapshots, snapshotsService(new Map([[name, snapshotter]]))),
  grpc: true,
  grpcWeb: false,
  connect: false,
  interceptors: [errors],
});
const server = http2.createServer(handler);
server.listen(socket, () => process.stdout.write("ready\n"));
const stop = () => {
  server.close();
  void snapshotter.close().finally(() => process.exit(0));
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);

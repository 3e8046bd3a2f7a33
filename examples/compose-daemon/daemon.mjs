// A daemon of your own: Berth's namespaces + events services, plus a custom plugin that labels every new
// namespace with its creation time. Run: node daemon.mjs /tmp/my-daemon   (then: ctr -a /tmp/my-daemon/sock ns ls)
import {
  createLogger,
  defaultConfig,
  eventsTtrpcPlugin,
  introspectionGrpcPlugin,
  startDaemon,
  versionGrpcPlugin,
} from "@berth/daemon";
import { EventsPlugin, exchangePlugin } from "@berth/events";
import { eventsGrpcPlugin } from "@berth/events/service";
import { MetadataPlugin, metadataPlugin } from "@berth/metadata";
import { namespacesGrpcPlugin } from "@berth/metadata/service";
import { definePlugin, pluginType } from "@berth/plugin";

// The custom plugin: watches /namespaces/create and stamps a label on the new namespace.
const stamper = definePlugin({
  type: pluginType("example.internal.v1"),
  id: "created-at-stamper",
  requires: [EventsPlugin, MetadataPlugin],
  init(ic) {
    const namespaces = ic.getSingle(MetadataPlugin).namespaces;
    (async () => {
      for await (const env of ic
        .getSingle(EventsPlugin)
        .subscribe({ signal: ic.signal, match: (e) => e.topic === "/namespaces/create" })) {
        namespaces.setLabel(env.namespace, "example.com/created-at", env.timestamp.toISOString());
      }
    })();
    return {};
  },
});

const dir = process.argv[2] ?? "/tmp/berth-example";
const config = { ...defaultConfig(), root: `${dir}/root`, state: `${dir}/state` };
config.grpc.address = `${dir}/sock`;
const plugins = [
  exchangePlugin,
  metadataPlugin,
  versionGrpcPlugin,
  namespacesGrpcPlugin,
  eventsGrpcPlugin,
  eventsTtrpcPlugin,
  introspectionGrpcPlugin,
  stamper,
];
const daemon = await startDaemon({ config, plugins, log: createLogger("warn") });
process.once("SIGTERM", () => daemon.close().then(() => process.exit(0)));
process.stdout.write(`listening on ${daemon.address}\n`);

import * as net from "node:net";
import { ContentPlugin } from "@berth/content-store";
import { InvalidArgumentError } from "@berth/errdefs";
import { type AnyRegistration, definePlugin } from "@berth/plugin";
import { SnapshotPlugin } from "@berth/snapshotter";
import type { ProxyPluginConfig } from "./config/config.js";

/**
 * `[proxy_plugins.<name>]` entries as plugins: a store served by another process on a unix socket, used through
 * the same interface as a built-in one. Like containerd, a proxy content store named `content` (or the only one
 * left when `io.containerd.content.v1.content` is disabled) is the one the metadata database is put over; a
 * proxy snapshotter (`type = "snapshot"`) is a snapshotter like the built-in ones, under its name.
 */
export function proxyPluginRegistrations(proxies: Readonly<Record<string, ProxyPluginConfig>>): AnyRegistration[] {
  return Object.entries(proxies).map(([name, proxy]) => {
    switch (proxy.type) {
      case "content":
        return definePlugin({
          type: ContentPlugin,
          id: name,
          async init(ic) {
            ic.meta.exports.address = proxy.address;
            // loaded only when a proxy is configured: connect-node costs start-up time
            const [{ createGrpcTransport, Http2SessionManager }, { createContentClient }] = await Promise.all([
              import("@connectrpc/connect-node"),
              import("@berth/content-store/proxy"),
            ]);
            const baseUrl = "http://localhost";
            const sessionManager = new Http2SessionManager(baseUrl, undefined, {
              createConnection: () => net.connect(proxy.address),
            });
            ic.signal.addEventListener("abort", () => sessionManager.abort(), { once: true });
            return createContentClient(createGrpcTransport({ baseUrl, sessionManager }));
          },
        });
      case "snapshot":
        return definePlugin({
          type: SnapshotPlugin,
          id: name,
          async init(ic) {
            ic.meta.exports.address = proxy.address;
            const [{ createGrpcTransport, Http2SessionManager }, { createSnapshotterClient }] = await Promise.all([
              import("@connectrpc/connect-node"),
              import("@berth/snapshotter/proxy"),
            ]);
            const baseUrl = "http://localhost";
            const sessionManager = new Http2SessionManager(baseUrl, undefined, {
              createConnection: () => net.connect(proxy.address),
            });
            ic.signal.addEventListener("abort", () => sessionManager.abort(), { once: true });
            // The remote process serves its snapshotter under the proxy's name (containerd's proxy_plugins).
            return createSnapshotterClient(createGrpcTransport({ baseUrl, sessionManager }), name);
          },
        });
      default:
        throw new InvalidArgumentError(`unsupported proxy plugin type ${JSON.stringify(proxy.type)} for ${name}`);
    }
  });
}

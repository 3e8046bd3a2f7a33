import * as net from "node:net";
import { ContentPlugin } from "@berth/content-store";
import { InvalidArgumentError } from "@berth/errdefs";
import { type AnyRegistration, definePlugin } from "@berth/plugin";
import { SnapshotPlugin } from "@berth/snapshotter";
import type { Transport } from "@connectrpc/connect";
import type { ProxyPluginConfig } from "./config/config.js";

/**
 * A gRPC transport to a proxy plugin's unix socket, closed when the daemon shuts down. connect-node is loaded
 * only here, when a proxy is configured: it costs start-up time.
 */
async function proxyTransport(address: string, signal: AbortSignal): Promise<Transport> {
  const { createGrpcTransport, Http2SessionManager } = await import("@connectrpc/connect-node");
  const baseUrl = "http://localhost";
  const sessionManager = new Http2SessionManager(baseUrl, undefined, { createConnection: () => net.connect(address) });
  signal.addEventListener("abort", () => sessionManager.abort(), { once: true });
  return createGrpcTransport({ baseUrl, sessionManager });
}

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
            const { createContentClient } = await import("@berth/content-store/proxy");
            return createContentClient(await proxyTransport(proxy.address, ic.signal));
          },
        });
      case "snapshot":
        return definePlugin({
          type: SnapshotPlugin,
          id: name,
          async init(ic) {
            ic.meta.exports.address = proxy.address;
            const { createSnapshotterClient } = await import("@berth/snapshotter/proxy");
            // The remote process serves its snapshotter under the proxy's name (containerd's proxy_plugins).
            return createSnapshotterClient(await proxyTransport(proxy.address, ic.signal), name);
          },
        });
      default:
        throw new InvalidArgumentError(`unsupported proxy plugin type ${JSON.stringify(proxy.type)} for ${name}`);
    }
  });
}

import { mkdir } from "node:fs/promises";
import {
  GrpcServicePlugin,
  type LoadedPlugins,
  type Logger,
  type AnyRegistration,
  Registry,
  loadPlugins,
} from "@berth/plugin";
import { GcPlugin } from "@berth/metadata";
import { createTtrpcServer, type TtrpcServer } from "@berth/ttrpc";
import type { DaemonConfig } from "./config/config.js";
import type { MetricsServer } from "./metrics.js";
import { proxyPluginRegistrations } from "./proxy-plugins.js";
import { type GrpcServer, startGrpcServer } from "./server/grpc-server.js";
import { TtrpcServicePlugin } from "./services/ttrpc-events.js";
import { fixMallocThresholds, startMemoryTrimmer } from "./memory-trim.js";
import { VERSION, readRevision } from "./version.js";

export interface DaemonOptions {
  readonly config: DaemonConfig;
  readonly plugins: readonly AnyRegistration[];
  readonly log: Logger;
  readonly version?: string;
  readonly revision?: string;
}

export interface Daemon {
  readonly address: string;
  readonly ttrpcAddress: string;
  readonly plugins: LoadedPlugins;
  /** Graceful stop: GOAWAY to clients, subscriber streams ended, plugins closed in reverse order. */
  close(): Promise<void>;
}

/** Loads the plugins, then serves gRPC on `address` and ttrpc on `address.ttrpc` (or `[ttrpc] address`). */
export async function startDaemon(options: DaemonOptions): Promise<Daemon> {
  const { config, log } = options;
  const address = config.grpc.address;
  const ttrpcAddress = config.ttrpc.address || `${address}.ttrpc`;
  await mkdir(config.root, { recursive: true, mode: 0o711 });
  await mkdir(config.state, { recursive: true, mode: 0o711 });

  const shutdown = new AbortController();
  const registry = new Registry().registerAll([...options.plugins, ...proxyPluginRegistrations(config.proxyPlugins)]);
  const plugins = await loadPlugins(registry, {
    daemon: {
      root: config.root,
      state: config.state,
      address,
      ttrpcAddress,
      version: options.version ?? VERSION,
      revision: options.revision ?? readRevision(),
    },
    log,
    configs: config.plugins,
    disabled: config.disabledPlugins,
    required: config.requiredPlugins,
    signal: shutdown.signal,
  });

  let metrics: MetricsServer | undefined;
  let grpc: GrpcServer | undefined;
  let ttrpc: TtrpcServer | undefined;
  let trimmer: { stop(): void } | undefined;
  const close = async () => {
    shutdown.abort();
    trimmer?.stop();
    await grpc?.close();
    await ttrpc?.close();
    await metrics?.close();
    await plugins.close(log);
  };
  try {
    if (config.metrics.address) {
      // prom-client only when metrics are asked for: it costs start-up time and memory.
      const { startMetricsServer } = await import("./metrics.js");
      metrics = await startMetricsServer(config.metrics.address, config.metrics.grpcHistogram);
      for (const gc of plugins.byType(GcPlugin).values()) metrics.addGcStats(() => gc.stats());
    }
    const services = [...plugins.byType(GrpcServicePlugin).values()];
    grpc = await startGrpcServer({
      address,
      uid: config.grpc.uid,
      gid: config.grpc.gid,
      maxRecvMessageSize: config.grpc.maxRecvMessageSize,
      maxSendMessageSize: config.grpc.maxSendMessageSize,
      routes: (router) => {
        for (const service of services) service.register?.(router);
      },
      lazyServices: services.flatMap((service) => Object.entries(service.lazy ?? {})),
      log,
      metrics: metrics?.rpc,
    });
    const server = createTtrpcServer();
    ttrpc = server;
    for (const service of plugins.byType(TtrpcServicePlugin).values()) service.register(server);
    await server.listen(ttrpcAddress, { mode: 0o660 });
  } catch (err) {
    await close();
    throw err;
  }
  trimmer = startMemoryTrimmer({ log });
  // after boot: the addon's load is not on the way to the first RPC
  void fixMallocThresholds(log);
  log.info({ address, ttrpcAddress }, "berthd successfully booted");
  return { address, ttrpcAddress, plugins, close };
}

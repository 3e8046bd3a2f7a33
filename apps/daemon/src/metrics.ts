import { createServer, type Server } from "node:http";
import { Counter, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { RpcMetrics } from "./server/interceptors.js";

export interface MetricsServer {
  readonly registry: Registry;
  readonly rpc: RpcMetrics;
  close(): Promise<void>;
}

/** Parses `host:port` (containerd's `[metrics] address`); a bare `:port` listens on every address. */
function parseAddress(address: string): { host?: string; port: number } {
  const i = address.lastIndexOf(":");
  const host = address.slice(0, i).replace(/^\[|\]$/g, "");
  const port = Number(address.slice(i + 1));
  if (i < 0 || !Number.isInteger(port) || port < 0 || port > 65535)
    throw new Error(`invalid metrics address ${address}`);
  return host ? { host, port } : { port };
}

/** Prometheus metrics at `http://<address>/v1/metrics`, as containerd serves them. */
export async function startMetricsServer(address: string, histogram: boolean): Promise<MetricsServer> {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "berth_" });
  const rpc: RpcMetrics = {
    handled: new Counter({
      name: "grpc_server_handled_total",
      help: "RPCs completed on the server, by code",
      labelNames: ["grpc_service", "grpc_method", "grpc_code"],
      registers: [registry],
    }),
    duration: histogram
      ? new Histogram({
          name: "grpc_server_handling_seconds",
          help: "Time to handle an RPC",
          labelNames: ["grpc_service", "grpc_method"],
          registers: [registry],
        })
      : undefined,
  };
  const server: Server = createServer((req, res) => {
    if (req.url !== "/v1/metrics" && req.url !== "/metrics") {
      res.writeHead(404).end();
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { "content-type": registry.contentType }).end(text),
      (err) => res.writeHead(500).end(String(err)),
    );
  });
  const { host, port } = parseAddress(address);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve());
  });
  return {
    registry,
    rpc,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

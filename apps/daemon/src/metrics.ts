import { createServer, type Server } from "node:http";
import type { GcSchedulerStats } from "@berth/metadata";
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { RpcMetrics } from "./server/interceptors.js";

export interface MetricsServer {
  readonly registry: Registry;
  readonly rpc: RpcMetrics;
  /** Exports the garbage collector's totals, read at scrape time. */
  addGcStats(stats: () => GcSchedulerStats): void;
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
    addGcStats: (stats) => registerGcMetrics(registry, stats),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** Collections run, how long they took and what they removed, as totals since start (read at scrape time). */
function registerGcMetrics(registry: Registry, stats: () => GcSchedulerStats): void {
  new Gauge({
    name: "berth_gc_runs_total",
    help: "Garbage collections run (failed ones included) since start",
    labelNames: ["result"],
    registers: [registry],
    collect() {
      const s = stats();
      this.set({ result: "ok" }, s.runs - s.failures);
      this.set({ result: "error" }, s.failures);
    },
  });
  new Gauge({
    name: "berth_gc_duration_seconds_total",
    help: "Time spent collecting since start",
    registers: [registry],
    collect() {
      this.set(stats().durationMs / 1000);
    },
  });
  new Gauge({
    name: "berth_gc_last_duration_seconds",
    help: "Duration of the last collection",
    registers: [registry],
    collect() {
      const last = stats().last;
      if (last !== undefined) this.set(last.durationMs / 1000);
    },
  });
  new Gauge({
    name: "berth_gc_removed_total",
    help: "Records removed by garbage collection since start, by kind",
    labelNames: ["kind"],
    registers: [registry],
    collect() {
      const s = stats();
      for (const [kind, n] of Object.entries(s.removed)) this.set({ kind }, n);
      this.set({ kind: "blob" }, s.blobsDeleted);
      this.set({ kind: "ingest" }, s.ingestsAborted);
    },
  });
}

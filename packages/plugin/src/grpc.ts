import type { ConnectRouter } from "@connectrpc/connect";
import { pluginType } from "./plugin.js";

/** Loads a service's descriptor and implementation on demand and returns how to add it to a router. */
export type GrpcServiceLoader = () => Promise<(router: ConnectRouter) => void>;

/**
 * What a gRPC service plugin provides: service(s) added to the daemon's router now (`register`), and/or
 * services loaded on their first call (`lazy`, keyed by the service's full type name, e.g.
 * `containerd.services.tasks.v1.Tasks`). Lazy services keep their descriptors and code out of start-up.
 */
export interface GrpcService {
  register?(router: ConnectRouter): void;
  readonly lazy?: Readonly<Record<string, GrpcServiceLoader>>;
}

/** `io.containerd.grpc.v1`: services served on the daemon's gRPC socket. */
export const GrpcServicePlugin = pluginType<GrpcService>("io.containerd.grpc.v1");

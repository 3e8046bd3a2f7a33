import type { ConnectRouter } from "@connectrpc/connect";
import { pluginType } from "./plugin.js";

/** What a gRPC service plugin provides: it adds its service(s) to the daemon's router. */
export interface GrpcService {
  register(router: ConnectRouter): void;
}

/** `io.containerd.grpc.v1`: services served on the daemon's gRPC socket. */
export const GrpcServicePlugin = pluginType<GrpcService>("io.containerd.grpc.v1");

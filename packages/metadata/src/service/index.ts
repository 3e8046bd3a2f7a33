export { namespacesService } from "./namespaces.js";
export { leasesService } from "./leases.js";
export type { LeasesServiceOptions } from "./leases.js";
export { namespacesGrpcPlugin, leasesGrpcPlugin, contentGrpcPlugin } from "./service-plugin.js";

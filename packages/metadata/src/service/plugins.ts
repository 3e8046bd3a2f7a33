// Plugin registrations of the metadata-backed gRPC services only: importing this (rather than "./index.js")
// keeps the service implementations out of a bundle's start-up code; they load on each service's first call.
export {
  containersGrpcPlugin,
  contentGrpcPlugin,
  imagesGrpcPlugin,
  leasesGrpcPlugin,
  namespacesGrpcPlugin,
} from "./service-plugin.js";
export { snapshotsGrpcPlugin } from "./snapshots.js";

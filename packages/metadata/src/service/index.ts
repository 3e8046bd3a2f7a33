export { namespacesService } from "./namespaces.js";
export { leasesService } from "./leases.js";
export type { LeasesServiceOptions } from "./leases.js";
export { createImagePublished, imagesService, updateImagePublished } from "./images.js";
export type { ImagesServiceOptions } from "./images.js";
export {
  namespacesGrpcPlugin,
  leasesGrpcPlugin,
  contentGrpcPlugin,
  imagesGrpcPlugin,
  containersGrpcPlugin,
} from "./service-plugin.js";
export { containersService } from "./containers.js";
export { snapshotsGrpcPlugin } from "./snapshots.js";

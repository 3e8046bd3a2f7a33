export { namespacesService } from "./namespaces.js";
export { namespacesGrpcPlugin } from "./service-plugin.js";

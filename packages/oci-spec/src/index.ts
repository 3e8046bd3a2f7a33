// @berth/oci-spec: OCI image-spec 1.1 and runtime-spec 1.2 types, media types, digests and validators.
// The root re-exports each subpath's index, so every name is listed once, in the subpath that owns it.
export * from "./digest/index.js";
export * from "./media-types/index.js";
export * from "./image/index.js";
export * from "./runtime/index.js";
export * from "./spec/index.js";

// @berth/images/pull: fetching an image from a registry into a content store (resolve, concurrent verified
// downloads, GC labels), and the whole pull (lease, fetch, overlapped unpack, image registration).
export { fetchImage } from "./pull.js";
export type { FetchImageOptions, FetchedImage, PullProgressEvent, PullState } from "./pull.js";
export { PULL_LEASE_EXPIRY_MS, pullImage } from "./pull-image.js";
export type { ImageRegistrar, PullImageDeps, PullImageOptions, PullResult, PullUnpackOptions } from "./pull-image.js";

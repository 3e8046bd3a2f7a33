// @berth/images/pull: fetching an image from a registry into a content store (resolve, concurrent verified
// downloads, GC labels). Registering and unpacking the image are the caller's steps.
export { fetchImage } from "./pull.js";
export type { FetchImageOptions, FetchedImage, PullProgressEvent, PullState } from "./pull.js";

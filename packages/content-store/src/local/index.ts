export { createLocalStore } from "./store.js";
export type { LocalContentStore, LocalStoreOptions } from "./store.js";

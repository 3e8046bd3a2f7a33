export { createWalkingDiffer, overlayDirs } from "./walking.js";
export type { WalkingDifferOptions } from "./walking.js";

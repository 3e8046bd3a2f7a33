export { diffService, descriptorFromProto, descriptorToProto, mountFromProto } from "./diff.js";
export type { DiffServiceOptions } from "./diff.js";

export { snapshotsService, ctxFromHandler, infoToProto, kindToProto, mountToProto } from "./snapshots.js";
export type { SnapshotsServiceOptions } from "./snapshots.js";

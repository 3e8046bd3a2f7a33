export { createSnapshotterClient, infoFromProto, kindFromProto, mountFromProto } from "./client.js";

export { snapshotterSuite, mountUnsupportedReason } from "./suite.js";
export type {
  LayerChanges,
  SnapshotterSuiteFactory,
  SnapshotterSuiteFixture,
  SnapshotterSuiteOptions,
} from "./suite.js";

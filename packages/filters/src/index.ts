export { always, anyOf, allOf, filterFunc, createSelector } from "./filter.js";
export type { Adaptor, Filter, Operator, Selector } from "./filter.js";
export { parse, parseAll, parseSelectors } from "./parser.js";
export {
  adaptorFunc,
  adaptLabels,
  adaptObject,
  adaptImage,
  adaptContainer,
  adaptContent,
  adaptSnapshot,
  adaptLease,
  adaptStatus,
  adaptPlugin,
  adaptEnvelope,
  adaptEventFields,
} from "./adaptors.js";
export type {
  LabelSet,
  FieldValue,
  FieldMap,
  ImageFields,
  ContainerFields,
  ContentFields,
  SnapshotKindName,
  SnapshotFields,
  LeaseFields,
  StatusFields,
  PluginFields,
  EventFields,
  EnvelopeFields,
} from "./adaptors.js";

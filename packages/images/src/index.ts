// @berth/images: containerd's image model over a content store. Platform matching lives under
// "./platforms", archive import/export under "./archive".
export {
  ManifestDigestLabel,
  MaxManifestSize,
  check,
  checkDescriptor,
  children,
  childrenHandler,
  configPlatform,
  decodeIndex,
  decodeManifest,
  diffIDs,
  imagePlatforms,
  imageSize,
  imageUsage,
  parseJSONObject,
  readBlob,
  readConfig,
  rejectSchema1,
  resolveConfig,
  resolveManifest,
  rootFS,
  validateDocument,
} from "./image.js";
export type { CheckResult, Image, ResolvedManifest, UsageOptions } from "./image.js";
export {
  SkipDesc,
  StopHandler,
  filterPlatforms,
  handlers,
  limitManifests,
  setChildrenLabels,
  walk,
  walkNotEmpty,
} from "./handlers.js";
export type { Handler, HandlerResult } from "./handlers.js";
export {
  AnnotationImageName,
  AnnotationManifestSubject,
  LabelDistributionSource,
  LabelGCRefContent,
  LabelUncompressed,
  childGCLabels,
  childGCLabelsFilterLayers,
  childrenLabels,
  isImageConfigType,
  isKnownConfig,
  isLayerType,
} from "./labels.js";
export { chainID, chainIDs } from "./identity.js";
export {
  DEFAULT_DOMAIN,
  familiarizeReference,
  formatReference,
  normalizeReference,
  ociReferenceName,
  parseNormalizedNamed,
} from "./reference.js";
export type { DockerReference } from "./reference.js";

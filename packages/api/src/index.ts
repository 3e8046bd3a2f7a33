// @berth/api: helpers for containerd's wire conventions and the shared containerd.types messages.
// Services and other proto packages live under subpaths, e.g. "@berth/api/services/tasks/v1".

export {
  LINUX_RESOURCES_TYPE_URL,
  PROCESS_TYPE_URL,
  RUNTIME_SPEC_TYPE_URL_PREFIX,
  SPEC_TYPE_URL,
  anyTypeName,
  packAny,
  packJsonAny,
  unpackAny,
  unpackJsonAny,
} from "./any.js";
export {
  GO_ZERO_TIMESTAMP_SECONDS,
  dateFromTimestamp,
  goZeroTimestamp,
  isGoZeroTimestamp,
  nowTimestamp,
  timestampFromDate,
} from "./timestamp.js";
export { DescriptorSchema, MetricSchema, MountSchema, PlatformSchema } from "./types/index.js";
export type { Descriptor, Metric, Mount, Platform } from "./types/index.js";

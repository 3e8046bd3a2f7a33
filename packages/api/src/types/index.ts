// @berth/api/types: the shared messages of package containerd.types.

export { DescriptorSchema, file_containerd_types_descriptor } from "../gen/containerd/types/descriptor_pb.js";
export type { Descriptor } from "../gen/containerd/types/descriptor_pb.js";
export { MetricSchema, file_containerd_types_metrics } from "../gen/containerd/types/metrics_pb.js";
export type { Metric } from "../gen/containerd/types/metrics_pb.js";
export { MountSchema, file_containerd_types_mount } from "../gen/containerd/types/mount_pb.js";
export type { Mount } from "../gen/containerd/types/mount_pb.js";
export { PlatformSchema, file_containerd_types_platform } from "../gen/containerd/types/platform_pb.js";
export type { Platform } from "../gen/containerd/types/platform_pb.js";

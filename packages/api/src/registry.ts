// @berth/api/registry: every file of the API in one protobuf registry, for unpacking Anys whose
// type is only known at run time (event payloads, runtime options, metrics).

import { createRegistry } from "@bufbuild/protobuf";
import type { DescFile, Registry } from "@bufbuild/protobuf";
import { file_berth_services_pull_v1_pull } from "./gen/berth/services/pull/v1/pull_pb.js";
import { file_containerd_cgroups_stats_v1_metrics } from "./gen/containerd/cgroups/stats/v1/metrics_pb.js";
import { file_containerd_cgroups_stats_v2_metrics } from "./gen/containerd/cgroups/stats/v2/metrics_pb.js";
import { file_containerd_events_container } from "./gen/containerd/events/container_pb.js";
import { file_containerd_events_content } from "./gen/containerd/events/content_pb.js";
import { file_containerd_events_namespace } from "./gen/containerd/events/namespace_pb.js";
import { file_containerd_events_snapshot } from "./gen/containerd/events/snapshot_pb.js";
import { file_containerd_events_task } from "./gen/containerd/events/task_pb.js";
import { file_containerd_runc_options_oci } from "./gen/containerd/runc/options/oci_pb.js";
import { file_containerd_runtime_task_v2_shim } from "./gen/containerd/runtime/task/v2/shim_pb.js";
import { file_containerd_services_containers_v1_containers } from "./gen/containerd/services/containers/v1/containers_pb.js";
import { file_containerd_services_content_v1_content } from "./gen/containerd/services/content/v1/content_pb.js";
import { file_containerd_services_diff_v1_diff } from "./gen/containerd/services/diff/v1/diff_pb.js";
import { file_containerd_services_events_v1_events } from "./gen/containerd/services/events/v1/events_pb.js";
import { file_containerd_services_images_v1_images } from "./gen/containerd/services/images/v1/images_pb.js";
import { file_containerd_services_introspection_v1_introspection } from "./gen/containerd/services/introspection/v1/introspection_pb.js";
import { file_containerd_services_leases_v1_leases } from "./gen/containerd/services/leases/v1/leases_pb.js";
import { file_containerd_services_namespaces_v1_namespaces } from "./gen/containerd/services/namespaces/v1/namespaces_pb.js";
import { file_containerd_services_snapshots_v1_snapshots } from "./gen/containerd/services/snapshots/v1/snapshots_pb.js";
import { file_containerd_services_tasks_v1_tasks } from "./gen/containerd/services/tasks/v1/tasks_pb.js";
import { file_containerd_services_ttrpc_events_v1_events } from "./gen/containerd/services/ttrpc/events/v1/events_pb.js";
import { file_containerd_services_version_v1_version } from "./gen/containerd/services/version/v1/version_pb.js";
import { file_containerd_types_descriptor } from "./gen/containerd/types/descriptor_pb.js";
import { file_containerd_types_metrics } from "./gen/containerd/types/metrics_pb.js";
import { file_containerd_types_mount } from "./gen/containerd/types/mount_pb.js";
import { file_containerd_types_platform } from "./gen/containerd/types/platform_pb.js";
import { file_containerd_types_task_task } from "./gen/containerd/types/task/task_pb.js";
import { file_google_rpc_status } from "./gen/google/rpc/status_pb.js";
import { file_grpc_health_v1_health } from "./gen/grpc/health/v1/health_pb.js";

/** Every generated file of @berth/api (well-known types are pulled in as dependencies). */
export const apiFiles: readonly DescFile[] = [
  file_containerd_types_descriptor,
  file_containerd_types_metrics,
  file_containerd_types_mount,
  file_containerd_types_platform,
  file_containerd_types_task_task,
  file_containerd_services_containers_v1_containers,
  file_containerd_services_content_v1_content,
  file_containerd_services_diff_v1_diff,
  file_containerd_services_events_v1_events,
  file_containerd_services_images_v1_images,
  file_containerd_services_introspection_v1_introspection,
  file_containerd_services_leases_v1_leases,
  file_containerd_services_namespaces_v1_namespaces,
  file_containerd_services_snapshots_v1_snapshots,
  file_containerd_services_tasks_v1_tasks,
  file_containerd_services_version_v1_version,
  file_containerd_services_ttrpc_events_v1_events,
  file_containerd_events_container,
  file_containerd_events_content,
  file_containerd_events_namespace,
  file_containerd_events_snapshot,
  file_containerd_events_task,
  file_containerd_runtime_task_v2_shim,
  file_containerd_runc_options_oci,
  file_containerd_cgroups_stats_v1_metrics,
  file_containerd_cgroups_stats_v2_metrics,
  file_google_rpc_status,
  file_grpc_health_v1_health,
  file_berth_services_pull_v1_pull,
];

/** A registry of every message, enum and service in @berth/api; use with unpackAny(). */
export const apiRegistry: Registry = createRegistry(...apiFiles);

// @berth/api/events: event payloads published on the daemon's exchange.
//
// Package containerd.events (container, content, namespace, snapshot and task events), plus the
// image events, which containerd defines in package containerd.services.images.v1. Pack them with
// packAny() so the type URL is the bare full name, e.g. "containerd.events.TaskExit".

export {
  ContainerCreateSchema,
  ContainerCreate_RuntimeSchema,
  ContainerDeleteSchema,
  ContainerUpdateSchema,
  file_containerd_events_container,
} from "../gen/containerd/events/container_pb.js";
export type {
  ContainerCreate,
  ContainerCreate_Runtime,
  ContainerDelete,
  ContainerUpdate,
} from "../gen/containerd/events/container_pb.js";
export { ContentDeleteSchema, file_containerd_events_content } from "../gen/containerd/events/content_pb.js";
export type { ContentDelete } from "../gen/containerd/events/content_pb.js";
export {
  NamespaceCreateSchema,
  NamespaceDeleteSchema,
  NamespaceUpdateSchema,
  file_containerd_events_namespace,
} from "../gen/containerd/events/namespace_pb.js";
export type { NamespaceCreate, NamespaceDelete, NamespaceUpdate } from "../gen/containerd/events/namespace_pb.js";
export {
  SnapshotCommitSchema,
  SnapshotPrepareSchema,
  SnapshotRemoveSchema,
  file_containerd_events_snapshot,
} from "../gen/containerd/events/snapshot_pb.js";
export type { SnapshotCommit, SnapshotPrepare, SnapshotRemove } from "../gen/containerd/events/snapshot_pb.js";
export {
  TaskCheckpointedSchema,
  TaskCreateSchema,
  TaskDeleteSchema,
  TaskExecAddedSchema,
  TaskExecStartedSchema,
  TaskExitSchema,
  TaskIOSchema,
  TaskOOMSchema,
  TaskPausedSchema,
  TaskResumedSchema,
  TaskStartSchema,
  file_containerd_events_task,
} from "../gen/containerd/events/task_pb.js";
export type {
  TaskCheckpointed,
  TaskCreate,
  TaskDelete,
  TaskExecAdded,
  TaskExecStarted,
  TaskExit,
  TaskIO,
  TaskOOM,
  TaskPaused,
  TaskResumed,
  TaskStart,
} from "../gen/containerd/events/task_pb.js";
export {
  ImageCreateSchema,
  ImageDeleteSchema,
  ImageUpdateSchema,
} from "../gen/containerd/services/images/v1/images_pb.js";
export type { ImageCreate, ImageDelete, ImageUpdate } from "../gen/containerd/services/images/v1/images_pb.js";

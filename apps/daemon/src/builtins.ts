import { eventsGrpcPlugin } from "@berth/events/service/plugin";
import { exchangePlugin } from "@berth/events";
import { localContentPlugin } from "@berth/content-store";
import { diffGrpcPlugin, walkingDifferPlugin } from "@berth/diff/plugin";
import { gcSchedulerPlugin, metadataPlugin } from "@berth/metadata";
import {
  containersGrpcPlugin,
  contentGrpcPlugin,
  imagesGrpcPlugin,
  leasesGrpcPlugin,
  namespacesGrpcPlugin,
  snapshotsGrpcPlugin,
} from "@berth/metadata/service/plugins";
import type { AnyRegistration } from "@berth/plugin";
import { taskRuntimePlugin, tasksGrpcPlugin, tasksServicePlugin } from "@berth/runtime-v2/plugin";
import { nativeSnapshotterPlugin, overlayfsSnapshotterPlugin } from "@berth/snapshotter";
import { healthGrpcPlugin } from "./services/health.js";
import { introspectionGrpcPlugin } from "./services/introspection.js";
import { pullGrpcPlugin } from "./services/pull.js";
import { eventsTtrpcPlugin } from "./services/ttrpc-events.js";
import { versionGrpcPlugin } from "./services/version.js";

/** Every plugin built into berthd, in registration order (containerd's builtins.go, as a value). */
export const builtinPlugins: readonly AnyRegistration[] = [
  exchangePlugin,
  localContentPlugin,
  overlayfsSnapshotterPlugin,
  nativeSnapshotterPlugin,
  metadataPlugin,
  gcSchedulerPlugin,
  walkingDifferPlugin,
  versionGrpcPlugin,
  namespacesGrpcPlugin,
  contentGrpcPlugin,
  imagesGrpcPlugin,
  leasesGrpcPlugin,
  snapshotsGrpcPlugin,
  diffGrpcPlugin,
  pullGrpcPlugin,
  containersGrpcPlugin,
  taskRuntimePlugin,
  tasksServicePlugin,
  tasksGrpcPlugin,
  eventsGrpcPlugin,
  healthGrpcPlugin,
  eventsTtrpcPlugin,
  introspectionGrpcPlugin,
];

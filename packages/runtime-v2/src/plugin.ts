import { existsSync, realpathSync } from "node:fs";
import { packAny } from "@berth/api";
import { OptionsSchema } from "@berth/api/runc/options";
import type { Tasks } from "@berth/api/services/tasks/v1";
import { InvalidArgumentError } from "@berth/errdefs";
import { EventsPlugin } from "@berth/events";
import { MetadataPlugin } from "@berth/metadata";
import { GrpcServicePlugin, definePlugin, pluginType } from "@berth/plugin";
import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import { type RuntimeMapping, ShimManager } from "./manager.js";
import { tasksService } from "./service/tasks.js";

/** `io.containerd.runtime.v2`: the task runtime (one instance, id `task`). */
export const RuntimePlugin = pluginType<ShimManager>("io.containerd.runtime.v2");

/** `io.containerd.service.v1`: in-process services the gRPC plugins wrap (here `tasks-service`). */
export const TasksServicePlugin = pluginType<ServiceImpl<typeof Tasks>>("io.containerd.service.v1");

export interface RuntimeConfig {
  /** Runtime name → shim binary and default options. */
  readonly runtimes: Readonly<Record<string, RuntimeMapping>>;
  /** What shims get as `-publish-binary`; default: the berthd executable. */
  readonly publishBinary: string;
}

const isTable = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/**
 * Reads `[plugins."io.containerd.runtime.v2.task"]`: `runtimes.<name>.binary` (an absolute shim path) and
 * `runtimes.<name>.options` (runc shim options: `BinaryName`, `Root`, `SystemdCgroup`, as containerd's CRI
 * runtime options spell them), plus containerd's own keys (`platforms`, `sched_core`), which are accepted.
 */
export function parseRuntimeConfig(raw: unknown): RuntimeConfig {
  const runtimes: Record<string, RuntimeMapping> = {};
  let publishBinary = "";
  if (raw === undefined) return { runtimes, publishBinary };
  if (!isTable(raw)) throw new InvalidArgumentError("runtime v2 config must be a table");
  if (raw.publish_binary !== undefined) {
    if (typeof raw.publish_binary !== "string") throw new InvalidArgumentError("publish_binary must be a string");
    publishBinary = raw.publish_binary;
  }
  const table = raw.runtimes ?? {};
  if (!isTable(table)) throw new InvalidArgumentError("runtimes must be a table");
  for (const [name, entry] of Object.entries(table)) {
    if (!isTable(entry)) throw new InvalidArgumentError(`runtimes.${name} must be a table`);
    const binary = entry.binary ?? entry.runtime_path;
    if (binary !== undefined && (typeof binary !== "string" || !binary.startsWith("/"))) {
      throw new InvalidArgumentError(`runtimes.${name}.binary must be an absolute path`);
    }
    let options: RuntimeMapping["options"];
    if (entry.options !== undefined) {
      const o = entry.options;
      if (!isTable(o)) throw new InvalidArgumentError(`runtimes.${name}.options must be a table`);
      const str = (k: string) => {
        const v = o[k];
        if (v !== undefined && typeof v !== "string")
          throw new InvalidArgumentError(`runtimes.${name}.options.${k} must be a string`);
        return (v as string | undefined) ?? "";
      };
      options = packAny(
        OptionsSchema,
        create(OptionsSchema, {
          binaryName: str("BinaryName"),
          root: str("Root"),
          systemdCgroup: o.SystemdCgroup === true,
        }),
      );
    }
    runtimes[name] = { ...(binary !== undefined ? { binary: binary as string } : {}), ...(options ? { options } : {}) };
  }
  return { runtimes, publishBinary };
}

function defaultPublishBinary(): string {
  const script = process.argv[1];
  if (script && existsSync(script)) return realpathSync(script);
  return process.execPath;
}

/**
 * `io.containerd.runtime.v2.task`: the shim manager. Bundles live in `<state>/io.containerd.runtime.v2.task`,
 * work dirs in `<root>/io.containerd.runtime.v2.task`; on start it re-attaches to the shims of the bundles
 * left by an earlier run. Shims outlive the daemon: closing only lets go of their connections.
 */
export const taskRuntimePlugin = definePlugin({
  type: RuntimePlugin,
  id: "task",
  requires: [MetadataPlugin, EventsPlugin],
  config: {
    defaults: { runtimes: {}, publishBinary: "" },
    parse: parseRuntimeConfig,
    // runtime options travel packed; `config dump` shows the mapped binaries
    toToml: (c: RuntimeConfig) => ({
      publish_binary: c.publishBinary,
      runtimes: Object.fromEntries(
        Object.entries(c.runtimes).map(([name, m]) => [name, m.binary !== undefined ? { binary: m.binary } : {}]),
      ),
    }),
  },
  async init(ic) {
    const db = ic.getSingle(MetadataPlugin);
    const manager = new ShimManager({
      root: ic.rootDir,
      state: ic.stateDir,
      launch: {
        address: ic.daemon.address,
        ttrpcAddress: ic.daemon.ttrpcAddress,
        publishBinary: ic.config.publishBinary || defaultPublishBinary(),
      },
      events: ic.getSingle(EventsPlugin),
      log: ic.log,
      runtimes: ic.config.runtimes,
      containerRuntime: (ns, id) => {
        try {
          return db.containers.get(ns, id).runtime.name;
        } catch {
          return undefined;
        }
      },
    });
    const { loaded, cleaned } = await manager.load();
    if (loaded + cleaned > 0) ic.log.info({ loaded, cleaned }, "loaded existing tasks");
    ic.meta.platforms.push({ os: "linux", architecture: process.arch === "x64" ? "amd64" : process.arch });
    return manager;
  },
});

/** `io.containerd.service.v1.tasks-service`: the Tasks service over the shim manager and the containers. */
export const tasksServicePlugin = definePlugin({
  type: TasksServicePlugin,
  id: "tasks-service",
  requires: [RuntimePlugin, MetadataPlugin],
  init(ic) {
    return tasksService({ containers: ic.getSingle(MetadataPlugin).containers, runtime: ic.getSingle(RuntimePlugin) });
  },
});

/** `io.containerd.grpc.v1.tasks`: serves the tasks service on the daemon's gRPC socket. */
export const tasksGrpcPlugin = definePlugin({
  type: GrpcServicePlugin,
  id: "tasks",
  requires: [TasksServicePlugin],
  init(ic) {
    const impl = ic.getById(TasksServicePlugin, "tasks-service");
    return {
      lazy: {
        // The descriptor loads on the first call (start-up time).
        "containerd.services.tasks.v1.Tasks": async () => {
          const { Tasks: TasksDesc } = await import("@berth/api/services/tasks/v1");
          return (router) => router.service(TasksDesc, impl);
        },
      },
    };
  },
});

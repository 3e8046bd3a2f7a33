import { readFileSync } from "node:fs";
import { isAbsolute } from "node:path";
import { create } from "@bufbuild/protobuf";
import { type Timestamp, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { anyTypeName, packAny, unpackAny } from "@berth/api";
import { MetricsSchema } from "@berth/api/cgroups/v1";
import { MetricsSchema as MetricsV2Schema } from "@berth/api/cgroups/v2";
import {
  TaskCreateSchema,
  TaskDeleteSchema,
  TaskExecAddedSchema,
  TaskExecStartedSchema,
  TaskExitSchema,
  TaskOOMSchema,
  TaskPausedSchema,
  TaskResumedSchema,
  TaskStartSchema,
} from "@berth/api/events";
import { OptionsSchema, ProcessDetailsSchema } from "@berth/api/runc/options";
import { Task } from "@berth/api/task/v2";
import { Status } from "@berth/api/types/task";
import { FailedPreconditionError, InvalidArgumentError, NotFoundError, NotImplementedError } from "@berth/errdefs";
import { NAMESPACE_METADATA_KEY, type TtrpcCallContext, type TtrpcServiceImpl } from "@berth/ttrpc";
import { Container, type ContainerEvents, type RuntimeChoice, type ShimProcess } from "./container.js";
import { cgroupDir, hostCgroupMode, processCgroups } from "./cgroups.js";
import { cgroupV1Metrics, cgroupV2Metrics } from "./metrics.js";
import type { ShimNative } from "./native.js";
import { createOomWatcher, type OomWatcher } from "./oom.js";
import type { EventPublisher } from "./publisher.js";
import type { ExitRecord, Reaper } from "./reaper.js";

export const SHIM_VERSION = "0.1.0";

const ZERO_TIME: Timestamp = timestampFromDate(new Date(0));

/** What the Task service needs from the server hosting it. */
export interface TaskHost {
  readonly namespace: string;
  readonly native: ShimNative;
  readonly reaper: Reaper;
  readonly publisher: EventPublisher;
  /** Called after a Shutdown, and whenever the last container is gone. */
  maybeIdle(): void;
}

/**
 * containerd.task.v2.Task for every container of one namespace. containerd sends the container id in each
 * request, so one server can host many containers, as containerd's own shim does for a pod.
 */
export class TaskService implements ContainerEvents {
  readonly containers = new Map<string, Container>();
  readonly #host: TaskHost;
  /** Creates in flight, so that two Creates of one id cannot both pass the existence check. */
  readonly #creating = new Set<string>();
  readonly #oom: OomWatcher;

  constructor(host: TaskHost, oom?: OomWatcher) {
    this.#host = host;
    this.#oom =
      oom ?? createOomWatcher(host.native, (id) => this.#publish("/tasks/oom", TaskOOMSchema, { containerId: id }));
  }

  /** Stops watching for OOM kills (the server is stopping). */
  close(): void {
    this.#oom.close();
  }

  get size(): number {
    return this.containers.size + this.#creating.size;
  }

  started(c: Container, p: ShimProcess): void {
    if (p.execId === "") {
      this.#publish("/tasks/start", TaskStartSchema, { containerId: c.id, pid: p.pid });
    } else {
      this.#publish("/tasks/exec-started", TaskExecStartedSchema, { containerId: c.id, execId: p.execId, pid: p.pid });
    }
  }

  exit(c: Container, p: ShimProcess, exit: ExitRecord): void {
    this.#publish("/tasks/exit", TaskExitSchema, {
      containerId: c.id,
      id: p.execId || c.id,
      pid: p.pid,
      exitStatus: exit.status,
      exitedAt: timestampFromDate(exit.at),
    });
  }

  #publish(topic: string, schema: Parameters<EventPublisher["publish"]>[2], event: object): void {
    this.#host.publisher.publish(this.#host.namespace, topic, schema, create(schema, event as never));
  }

  #container(id: string): Container {
    const c = this.containers.get(id);
    if (c === undefined) throw new NotFoundError(`container ${id}`, { bare: false });
    return c;
  }

  #checkNamespace(ctx: TtrpcCallContext): void {
    const ns = ctx.metadata.get(NAMESPACE_METADATA_KEY)?.[0];
    if (ns !== undefined && ns !== this.#host.namespace) {
      throw new FailedPreconditionError(`this shim serves namespace ${this.#host.namespace}, not ${ns}`, {
        bare: true,
      });
    }
  }

  /** The typed handlers registered on the ttrpc server. */
  handlers(): Partial<TtrpcServiceImpl<(typeof Task)["method"]>> {
    const host = this.#host;
    return {
      create: async (req, ctx) => {
        this.#checkNamespace(ctx);
        if (this.containers.has(req.id) || this.#creating.has(req.id)) {
          throw new FailedPreconditionError(`container ${req.id} already exists in this shim`, { bare: true });
        }
        this.#creating.add(req.id);
        try {
          const c = await Container.create(host.native, host.reaper, this, {
            id: req.id,
            namespace: host.namespace,
            bundle: req.bundle,
            rootfs: req.rootfs,
            stdio: { stdin: req.stdin, stdout: req.stdout, stderr: req.stderr, terminal: req.terminal },
            runtime: runtimeChoice(req.options),
            checkpoint: req.checkpoint,
          });
          this.containers.set(req.id, c);
          // watched from create on (containerd's shim starts at Start), so no early OOM kill goes unreported
          this.#oom.add(req.id, c.init.pid);
          this.#publish("/tasks/create", TaskCreateSchema, {
            containerId: req.id,
            bundle: req.bundle,
            rootfs: req.rootfs,
            io: { stdin: req.stdin, stdout: req.stdout, stderr: req.stderr, terminal: req.terminal },
            checkpoint: req.checkpoint,
            pid: c.init.pid,
          });
          return { pid: c.init.pid };
        } finally {
          this.#creating.delete(req.id);
          if (this.size === 0) host.maybeIdle();
        }
      },
      start: async (req, ctx) => {
        this.#checkNamespace(ctx);
        const p = await this.#container(req.id).start(req.execId);
        return { pid: p.pid };
      },
      delete: async (req, ctx) => {
        this.#checkNamespace(ctx);
        const c = this.#container(req.id);
        const p = await c.delete(req.execId);
        const exitedAt = p.exit ? timestampFromDate(p.exit.at) : ZERO_TIME;
        const exitStatus = p.exit?.status ?? 0;
        if (req.execId === "") {
          this.containers.delete(req.id);
          this.#oom.remove(req.id);
          this.#publish("/tasks/delete", TaskDeleteSchema, {
            containerId: req.id,
            id: req.id,
            pid: p.pid,
            exitStatus,
            exitedAt,
          });
          if (this.size === 0) host.maybeIdle();
        }
        return { pid: p.pid, exitStatus, exitedAt };
      },
      state: (req, ctx) => {
        this.#checkNamespace(ctx);
        const c = this.#container(req.id);
        const p = c.process(req.execId);
        return {
          id: req.execId || req.id,
          bundle: c.bundle,
          pid: p.pid,
          status: p.status,
          stdin: p.stdio.stdin,
          stdout: p.stdio.stdout,
          stderr: p.stdio.stderr,
          terminal: p.stdio.terminal,
          exitStatus: p.exit?.status ?? 0,
          exitedAt: p.exit ? timestampFromDate(p.exit.at) : ZERO_TIME,
          execId: req.execId,
        };
      },
      pids: async (req, ctx) => {
        this.#checkNamespace(ctx);
        const c = this.#container(req.id);
        const pids = await c.runtime.ps(c.id);
        const execOf = new Map<number, string>();
        for (const e of c.execs.values()) if (e.pid !== 0) execOf.set(e.pid, e.execId);
        return {
          processes: pids.map((pid) => {
            const execId = execOf.get(pid);
            return execId === undefined
              ? { pid }
              : { pid, info: packAny(ProcessDetailsSchema, create(ProcessDetailsSchema, { execId })) };
          }),
        };
      },
      pause: async (req, ctx) => {
        this.#checkNamespace(ctx);
        await this.#container(req.id).pause();
        this.#publish("/tasks/paused", TaskPausedSchema, { containerId: req.id });
        return {};
      },
      resume: async (req, ctx) => {
        this.#checkNamespace(ctx);
        await this.#container(req.id).resume();
        this.#publish("/tasks/resumed", TaskResumedSchema, { containerId: req.id });
        return {};
      },
      checkpoint: (req, ctx) => {
        this.#checkNamespace(ctx);
        this.#container(req.id);
        throw new NotImplementedError("checkpoint is not supported by the berth shim (no usable CRIU)", { bare: true });
      },
      kill: async (req, ctx) => {
        this.#checkNamespace(ctx);
        await this.#container(req.id).kill(req.execId, req.signal, req.all);
        return {};
      },
      exec: (req, ctx) => {
        this.#checkNamespace(ctx);
        const c = this.#container(req.id);
        if (req.spec === undefined || req.spec.value.length === 0) {
          throw new InvalidArgumentError("exec needs a process spec", { bare: true });
        }
        c.addExec(
          req.execId,
          { stdin: req.stdin, stdout: req.stdout, stderr: req.stderr, terminal: req.terminal },
          req.spec.value,
        );
        this.#publish("/tasks/exec-added", TaskExecAddedSchema, { containerId: req.id, execId: req.execId });
        return {};
      },
      resizePty: (req, ctx) => {
        this.#checkNamespace(ctx);
        const p = this.#container(req.id).process(req.execId);
        if (!p.stdio.terminal) throw new FailedPreconditionError("process has no terminal", { bare: true });
        p.io?.resize(req.width, req.height);
        return {};
      },
      closeIO: (req, ctx) => {
        this.#checkNamespace(ctx);
        const p = this.#container(req.id).process(req.execId);
        if (req.stdin) p.io?.closeStdin();
        return {};
      },
      update: async (req, ctx) => {
        this.#checkNamespace(ctx);
        const c = this.#container(req.id);
        if (req.resources === undefined) throw new InvalidArgumentError("update needs resources", { bare: true });
        await c.update(req.resources.value);
        return {};
      },
      wait: async (req, ctx) => {
        this.#checkNamespace(ctx);
        const p = this.#container(req.id).process(req.execId);
        const exit = await p.wait();
        return { exitStatus: exit.status, exitedAt: timestampFromDate(exit.at) };
      },
      stats: (req, ctx) => {
        this.#checkNamespace(ctx);
        const c = this.#container(req.id);
        if (c.init.status === Status.STOPPED) throw new NotFoundError(`container ${req.id} is stopped`, { bare: true });
        // v2 statistics only on a unified host, as containerd's shim decides; a hybrid host keeps its
        // controllers in the v1 hierarchies
        if (hostCgroupMode() === "unified") {
          const path = processCgroups(c.init.pid)?.v2;
          if (path === undefined) throw new NotFoundError(`cgroup of ${req.id} does not exist`, { bare: true });
          return { stats: packAny(MetricsV2Schema, cgroupV2Metrics(cgroupDir("", path))) };
        }
        return { stats: packAny(MetricsSchema, cgroupV1Metrics(c.cgroupsPath())) };
      },
      connect: (req, ctx) => {
        this.#checkNamespace(ctx);
        const c = this.containers.get(req.id);
        return { shimPid: process.pid, taskPid: c?.init.pid ?? 0, version: SHIM_VERSION };
      },
      shutdown: (_req, ctx) => {
        this.#checkNamespace(ctx);
        host.maybeIdle();
        return {};
      },
    };
  }
}

/**
 * The runtime options of a Create: containerd.runc.v1.Options, or runtimeoptions.v1.Options (what `ctr run
 * --runtime-config-path` and CRI send for runtimes other than runc.v2) naming a file of `BinaryName`, `Root`
 * and `NoPivotRoot` settings (TOML `Key = value` lines or a JSON object). Anything else is refused.
 */
function runtimeChoice(options: Parameters<typeof unpackAny>[1] | undefined): RuntimeChoice {
  if (options === undefined || options.typeUrl === "") return { binaryName: "", root: "", noPivotRoot: false };
  if (anyTypeName(options) === "runtimeoptions.v1.Options") return runtimeConfigFile(options.value);
  const opts = unpackAny(OptionsSchema, options);
  if (opts === undefined) {
    throw new InvalidArgumentError(`unsupported runtime options type ${anyTypeName(options)}`, { bare: true });
  }
  if (opts.binaryName.includes("\0") || opts.root.includes("\0")) {
    throw new InvalidArgumentError("runtime options contain NUL", { bare: true });
  }
  return { binaryName: opts.binaryName, root: opts.root, noPivotRoot: opts.noPivotRoot };
}

const RUNTIME_CONFIG_KEYS = new Set(["BinaryName", "Root", "NoPivotRoot"]);

function runtimeConfigFile(value: Uint8Array): RuntimeChoice {
  const path = protoStringField(value, 2);
  if (path === undefined || path === "") return { binaryName: "", root: "", noPivotRoot: false };
  if (!isAbsolute(path)) throw new InvalidArgumentError(`runtime config path ${path} must be absolute`, { bare: true });
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new InvalidArgumentError(`runtime config ${path}: ${(err as Error).message}`, { bare: true });
  }
  const settings: Record<string, unknown> = {};
  if (text.trimStart().startsWith("{")) {
    Object.assign(settings, JSON.parse(text) as object);
  } else {
    for (const line of text.split("\n")) {
      const m = /^\s*([A-Za-z]+)\s*=\s*(.+?)\s*$/.exec(line);
      if (m === null) continue;
      const raw = m[2] as string;
      settings[m[1] as string] = raw === "true" ? true : raw === "false" ? false : raw.replace(/^["']|["']$/g, "");
    }
  }
  for (const key of Object.keys(settings)) {
    if (!RUNTIME_CONFIG_KEYS.has(key))
      throw new InvalidArgumentError(`runtime config ${path}: unknown key ${key}`, { bare: true });
  }
  const str = (v: unknown) => (typeof v === "string" && !v.includes("\0") ? v : "");
  return { binaryName: str(settings.BinaryName), root: str(settings.Root), noPivotRoot: settings.NoPivotRoot === true };
}

/** A length-delimited field of a protobuf message, decoded as UTF-8 (the last occurrence wins). */
function protoStringField(bytes: Uint8Array, field: number): string | undefined {
  let i = 0;
  let found: string | undefined;
  const varint = () => {
    let v = 0;
    let shift = 0;
    for (;;) {
      if (i >= bytes.length) throw new InvalidArgumentError("truncated runtime options", { bare: true });
      const b = bytes[i++] as number;
      v += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) return v;
      shift += 7;
    }
  };
  while (i < bytes.length) {
    const tag = varint();
    const wire = tag & 7;
    if (wire === 2) {
      const len = varint();
      if (i + len > bytes.length) throw new InvalidArgumentError("truncated runtime options", { bare: true });
      if (tag >>> 3 === field) found = Buffer.from(bytes.subarray(i, i + len)).toString("utf8");
      i += len;
    } else if (wire === 0) varint();
    else if (wire === 5) i += 4;
    else if (wire === 1) i += 8;
    else throw new InvalidArgumentError("malformed runtime options", { bare: true });
  }
  return found;
}

export { Task };

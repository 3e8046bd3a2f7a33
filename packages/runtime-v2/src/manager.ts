import { lstat, readdir, rm, rmdir, unlink } from "node:fs/promises";
import { connect } from "node:net";
import { dirname, join, resolve } from "node:path";
import { packAny, timestampFromDate } from "@berth/api";
import { TaskDeleteSchema, TaskExitSchema } from "@berth/api/events";
import { AlreadyExistsError, NotFoundError, isNotFound, isUnavailable } from "@berth/errdefs";
import type { Publisher } from "@berth/events";
import { validateIdentifier } from "@berth/identifiers";
import { type Logger, silentLogger } from "@berth/plugin";
import { socketPathOf } from "@berth/ttrpc";
import { create, toBinary } from "@bufbuild/protobuf";
import { AnySchema } from "@bufbuild/protobuf/wkt";
import {
  type ShimExit,
  type ShimLaunchConfig,
  deleteShimBinary,
  resolveShimBinary,
  startShimBinary,
} from "./binary.js";
import { BUNDLE_FILES, type Bundle, createBundle, deleteBundle, loadBundle, readBundleFile } from "./bundle.js";
import type { ShimConnection, ShimTaskClient } from "./shim-client.js";
import { type ShimLog, openShimLog } from "./shim-log.js";

/** A packed protobuf value (google.protobuf.Any), as given. */
export interface PackedValue {
  readonly typeUrl: string;
  readonly value: Uint8Array;
}

/** A mount of the task's root filesystem (containerd.types.Mount). */
export interface RootfsMount {
  readonly type: string;
  readonly source: string;
  readonly target?: string;
  readonly options: readonly string[];
}

/** The IO of a process: fifo paths, `file:///…`, `binary://…`, or empty for none; passed to the shim as is. */
export interface ProcessIO {
  readonly stdin: string;
  readonly stdout: string;
  readonly stderr: string;
  readonly terminal: boolean;
}

export interface CreateTaskOptions {
  /** The container's OCI spec (JSON bytes), written to the bundle's config.json. */
  readonly spec: Uint8Array;
  /** Runtime name (`io.containerd.runc.v2`) or an absolute shim binary path. */
  readonly runtime: string;
  /** The container's runtime options; used when the request carries none. */
  readonly runtimeOptions?: PackedValue;
  /** The request's task options. */
  readonly taskOptions?: PackedValue;
  readonly rootfs: readonly RootfsMount[];
  readonly io: ProcessIO;
}

/** How a runtime name maps to a shim (config `runtimes.<name>`). */
export interface RuntimeMapping {
  /** Absolute path of the shim binary to start for this runtime name. */
  readonly binary?: string;
  /** Options sent to the shim when neither the container nor the request has any. */
  readonly options?: PackedValue;
}

export interface ShimManagerOptions {
  /** `<root>/io.containerd.runtime.v2.task`: per-task work dirs. */
  readonly root: string;
  /** `<state>/io.containerd.runtime.v2.task`: bundles. */
  readonly state: string;
  readonly launch: ShimLaunchConfig;
  readonly events: Publisher;
  readonly log?: Logger;
  readonly runtimes?: Readonly<Record<string, RuntimeMapping>>;
  /**
   * The runtime name of a container, or undefined when it no longer exists: on load, tasks of vanished
   * containers are deleted, the others learn their runtime name.
   */
  readonly containerRuntime?: (namespace: string, id: string) => string | undefined;
}

/** The exit of a task's init process as `delete` reports it. */
export interface TaskExitInfo {
  readonly pid: number;
  readonly exitStatus: number;
  readonly exitedAt: Date;
}

/** One task and the shim serving it (containerd's shimTask). */
export class ShimTask {
  /** Set while the task is being deleted or the daemon lets go of it: a closing connection is then expected. */
  detached = false;
  /** The init process's IO paths, for cleaning up the client's fifos after a shim died. */
  io: ProcessIO | undefined;

  constructor(
    readonly bundle: Bundle,
    readonly runtime: string,
    readonly binary: string,
    readonly connection: ShimConnection,
    readonly shimLog: ShimLog | undefined,
  ) {}

  get id(): string {
    return this.bundle.id;
  }

  get namespace(): string {
    return this.bundle.namespace;
  }

  /** The Task service of the shim. */
  get task(): ShimTaskClient {
    return this.connection.task;
  }

  release(): void {
    this.detached = true;
    this.connection.conn.close();
    this.shimLog?.close();
  }
}

const key = (namespace: string, id: string) => `${namespace}/${id}`;

/**
 * The runtime v2 shim manager (containerd's ShimManager + TaskManager): one shim per task, started with the
 * shim binary protocol, driven over ttrpc, cleaned up with `shim delete` when it dies, and re-attached from
 * the bundles on disk after a daemon restart (`load`).
 */
export class ShimManager {
  readonly #opts: ShimManagerOptions;
  readonly #log: Logger;
  readonly #tasks = new Map<string, ShimTask>();
  readonly #pending = new Set<string>();

  constructor(options: ShimManagerOptions) {
    // shims run in their bundle dir: every path they get must be absolute
    this.#opts = {
      ...options,
      root: resolve(options.root),
      state: resolve(options.state),
      launch: {
        ...options.launch,
        address: resolve(options.launch.address),
        ttrpcAddress: resolve(options.launch.ttrpcAddress),
      },
    };
    this.#log = options.log ?? silentLogger;
  }

  /** Resolves a runtime name to its shim binary (config mapping first, then containerd's lookup). */
  resolveBinary(runtime: string): string {
    const mapped = this.#opts.runtimes?.[runtime]?.binary;
    if (mapped) return resolveShimBinary(mapped);
    return resolveShimBinary(runtime);
  }

  /**
   * Starts a shim for a new task and creates the task's init process in it (not started). AlreadyExists when
   * the namespace has a task of that id. On any failure everything started is torn down again.
   */
  async create(
    namespace: string,
    id: string,
    options: CreateTaskOptions,
    signal?: AbortSignal,
  ): Promise<{ task: ShimTask; pid: number }> {
    validateIdentifier(id);
    const k = key(namespace, id);
    if (this.#tasks.has(k) || this.#pending.has(k)) throw new AlreadyExistsError(`task ${id}`);
    this.#pending.add(k);
    try {
      const binary = this.resolveBinary(options.runtime);
      const bundle = await createBundle(this.#opts.root, this.#opts.state, namespace, id, options.spec);
      let shimLog: ShimLog | undefined;
      let connection: ShimConnection | undefined;
      try {
        const packed = options.taskOptions ?? options.runtimeOptions ?? this.#opts.runtimes?.[options.runtime]?.options;
        // the log fifo is made in the shim's start process; the shim opens it for writing and waits for us
        const address = await startShimBinary(
          binary,
          bundle,
          this.#opts.launch,
          packed ? marshalAny(packed) : undefined,
          signal,
          join(bundle.path, BUNDLE_FILES.log),
        );
        shimLog = await openShimLog(bundle, this.#log);
        connection = await (await import("./shim-client.js")).connectShim(address, namespace);
        const task = new ShimTask(bundle, options.runtime, binary, connection, shimLog);
        const response = await task.task.create({
          id,
          bundle: bundle.path,
          rootfs: options.rootfs.map((m) => ({
            type: m.type,
            source: m.source,
            target: m.target ?? "",
            options: [...m.options],
          })),
          stdin: options.io.stdin,
          stdout: options.io.stdout,
          stderr: options.io.stderr,
          terminal: options.io.terminal,
          ...(packed ? { options: packed } : {}),
        });
        task.io = options.io;
        this.#track(task);
        return { task, pid: response.pid };
      } catch (err) {
        await this.#abandon(bundle, binary, connection, shimLog);
        throw err;
      }
    } finally {
      this.#pending.delete(k);
    }
  }

  /** The task, or NotFound. */
  get(namespace: string, id: string): ShimTask {
    const task = this.#tasks.get(key(namespace, id));
    if (task === undefined) throw new NotFoundError(`task ${id}`);
    return task;
  }

  /** Whether the namespace has a task of that id. */
  has(namespace: string, id: string): boolean {
    return this.#tasks.has(key(namespace, id));
  }

  /** Tasks of a namespace (every namespace when undefined), in id order. */
  list(namespace?: string): ShimTask[] {
    const out = [...this.#tasks.values()].filter((t) => namespace === undefined || t.namespace === namespace);
    return out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  /**
   * Deletes a task (containerd's TaskManager.Delete): the shim deletes the init process (FailedPrecondition
   * while it runs), then is shut down; the bundle goes. A shim that answers NotFound is cleaned up anyway.
   */
  async delete(namespace: string, id: string): Promise<TaskExitInfo> {
    const task = this.get(namespace, id);
    let exit: TaskExitInfo | undefined;
    let shimErr: unknown;
    try {
      const r = await task.task.delete({ id });
      exit = { pid: r.pid, exitStatus: r.exitStatus, exitedAt: toDate(r.exitedAt) };
    } catch (err) {
      if (!isNotFound(err) && !isUnavailable(err)) throw err;
      shimErr = err;
    }
    this.#tasks.delete(key(namespace, id));
    task.detached = true;
    try {
      await task.task.shutdown({ id }, { timeoutMs: 3000 });
    } catch {
      // the shim exits while answering, or has already gone
    }
    task.release();
    await this.#removeSocket(task.connection.address);
    try {
      await deleteBundle(task.bundle);
    } catch (err) {
      this.#log.error({ id, namespace, err }, "failed to delete bundle");
    }
    if (exit === undefined) throw shimErr;
    return exit;
  }

  /**
   * Re-attaches to the shims of every bundle on disk (daemon start): live shims are tracked again; bundles
   * whose shim is gone are cleaned up with `shim delete`, publishing the task's exit and deletion.
   */
  async load(): Promise<{ loaded: number; cleaned: number }> {
    let loaded = 0;
    let cleaned = 0;
    let namespaces: string[];
    try {
      namespaces = await readdir(this.#opts.state);
    } catch {
      return { loaded, cleaned };
    }
    for (const ns of namespaces) {
      if (ns.startsWith(".")) continue;
      let ids: string[];
      try {
        ids = await readdir(join(this.#opts.state, ns));
      } catch {
        continue;
      }
      await Promise.all(
        ids.map(async (id) => {
          if (id.startsWith(".")) {
            // a deletion interrupted by a crash
            await rm(join(this.#opts.state, ns, id), { recursive: true, force: true });
            return;
          }
          const ok = await this.#loadOne(ns, id);
          if (ok) loaded++;
          else cleaned++;
        }),
      );
    }
    // work dirs whose bundle is gone
    await this.#cleanupWorkDirs();
    return { loaded, cleaned };
  }

  /** Lets go of every shim without stopping it (daemon shutdown: shims outlive the daemon). */
  close(): void {
    for (const task of this.#tasks.values()) task.release();
    this.#tasks.clear();
  }

  async #loadOne(ns: string, id: string): Promise<boolean> {
    const bundle = loadBundle(this.#opts.state, ns, id);
    const binary = (await readBundleFile(bundle, BUNDLE_FILES.shimBinaryPath))?.trim();
    if (!binary) {
      // the shim never started: nothing to ask it
      this.#log.warn({ id, namespace: ns }, "removing bundle of a task that never started");
      await deleteBundle(bundle).catch(() => {});
      return false;
    }
    const address = (await readBundleFile(bundle, BUNDLE_FILES.address))?.trim();
    let connection: ShimConnection | undefined;
    let shimLog: ShimLog | undefined;
    if (address) {
      try {
        connection = await (await import("./shim-client.js")).connectShim(address, ns);
        shimLog = await openShimLog(bundle, this.#log);
        const runtime = this.#opts.containerRuntime?.(ns, id);
        const task = new ShimTask(bundle, runtime ?? "", binary, connection, shimLog);
        await task.task.connect({ id }, { timeoutMs: 5000 });
        const st = await task.task.state({ id }, { timeoutMs: 5000 }).catch(() => undefined);
        if (st) task.io = { stdin: st.stdin, stdout: st.stdout, stderr: st.stderr, terminal: st.terminal };
        if (this.#opts.containerRuntime !== undefined && runtime === undefined) {
          this.#log.warn({ id, namespace: ns }, "container of a running shim is gone: deleting its task");
          this.#track(task);
          await task.task.kill({ id, signal: 9, all: true }).catch(() => {});
          await task.task.wait({ id }, { timeoutMs: 5000 }).catch(() => {});
          await this.delete(ns, id).catch(() => {});
          return false;
        }
        this.#track(task);
        this.#log.info({ id, namespace: ns }, "reconnected to shim");
        return true;
      } catch (err) {
        this.#log.warn({ id, namespace: ns, err }, "cannot reach shim: cleaning up");
        connection?.conn.close();
        shimLog?.close();
      }
    }
    await this.#cleanupDeadShim(bundle, binary, address, true);
    return false;
  }

  #track(task: ShimTask): void {
    this.#tasks.set(key(task.namespace, task.id), task);
    task.connection.conn.onClose(() => {
      if (task.detached) return;
      task.detached = true;
      task.shimLog?.close();
      this.#log.info({ id: task.id, namespace: task.namespace }, "shim disconnected");
      const tracked = this.#tasks.get(key(task.namespace, task.id)) === task;
      if (tracked) this.#tasks.delete(key(task.namespace, task.id));
      void this.#cleanupDeadShim(task.bundle, task.binary, task.connection.address, tracked).then(() =>
        removeFifos(task.io),
      );
    });
  }

  /**
   * containerd's cleanupAfterDeadShim: `shim delete` reaps what is left of the task, the leaked socket and the
   * bundle go, and the task's exit and deletion are published (status 255 when even that failed).
   */
  async #cleanupDeadShim(bundle: Bundle, binary: string, address: string | undefined, publish: boolean): Promise<void> {
    const { id, namespace } = bundle;
    let exit: ShimExit | undefined;
    try {
      exit = await deleteShimBinary(binary, bundle, this.#opts.launch);
    } catch (err) {
      this.#log.warn({ id, namespace, err }, "failed to clean up after shim disconnected");
    }
    if (address) await this.#removeSocket(address);
    try {
      await deleteBundle(bundle);
    } catch (err) {
      this.#log.error({ id, namespace, err }, "failed to delete bundle of a dead shim");
    }
    if (!publish) return;
    const pid = exit?.pid ?? 0;
    const exitStatus = exit?.exitStatus ?? 255;
    const exitedAt = timestampFromDate(exit?.exitedAt ?? new Date());
    const { events } = this.#opts;
    try {
      events.publish(
        namespace,
        "/tasks/exit",
        packAny(TaskExitSchema, create(TaskExitSchema, { containerId: id, id, pid, exitStatus, exitedAt })),
      );
      events.publish(
        namespace,
        "/tasks/delete",
        packAny(TaskDeleteSchema, create(TaskDeleteSchema, { containerId: id, pid, exitStatus, exitedAt })),
      );
    } catch (err) {
      this.#log.warn({ id, namespace, err }, "failed to publish exit of a dead shim");
    }
  }

  /** Tears down a task whose creation failed. */
  async #abandon(
    bundle: Bundle,
    binary: string,
    connection: ShimConnection | undefined,
    shimLog: ShimLog | undefined,
  ): Promise<void> {
    if (connection !== undefined) {
      await connection.task.delete({ id: bundle.id }, { timeoutMs: 5000 }).catch(() => {});
      await connection.task.shutdown({ id: bundle.id }, { timeoutMs: 3000 }).catch(() => {});
      connection.conn.close();
      await this.#removeSocket(connection.address);
    } else if ((await readBundleFile(bundle, BUNDLE_FILES.address).catch(() => undefined)) !== undefined) {
      await deleteShimBinary(binary, bundle, this.#opts.launch).catch(() => {});
    }
    shimLog?.close();
    await deleteBundle(bundle).catch((err) => this.#log.error({ id: bundle.id, err }, "failed to delete bundle"));
  }

  /**
   * Removes a shim's socket that nobody serves any more (a shim removes its own when it shuts down). One that
   * still answers belongs to a shim serving other tasks too (shared shims such as Berth's) and stays.
   */
  async #removeSocket(address: string): Promise<void> {
    if (!address.startsWith("unix://")) return;
    if (await socketServed(address)) return;
    await unlink(socketPathOf(address)).catch(() => {});
  }

  async #cleanupWorkDirs(): Promise<void> {
    let namespaces: string[];
    try {
      namespaces = await readdir(this.#opts.root);
    } catch {
      return;
    }
    for (const ns of namespaces) {
      let ids: string[];
      try {
        ids = await readdir(join(this.#opts.root, ns));
      } catch {
        continue;
      }
      for (const id of ids) {
        if (!this.#tasks.has(key(ns, id))) await rm(join(this.#opts.root, ns, id), { recursive: true, force: true });
      }
    }
  }
}

/**
 * Removes the fifos a client made for a task's IO once its shim is gone and no `delete` from that client will
 * come (only paths that are fifos; then their directory if that leaves it empty, as ctr's fifo sets are).
 */
async function removeFifos(io: ProcessIO | undefined): Promise<void> {
  if (io === undefined) return;
  const dirs = new Set<string>();
  for (const path of [io.stdin, io.stdout, io.stderr]) {
    if (!path.startsWith("/")) continue;
    try {
      if (!(await lstat(path)).isFIFO()) continue;
      await unlink(path);
      dirs.add(dirname(path));
    } catch {
      // already gone
    }
  }
  for (const dir of dirs) await rmdir(dir).catch(() => {});
}

function toDate(ts: { seconds: bigint; nanos: number } | undefined): Date {
  if (ts === undefined) return new Date(0);
  return new Date(Number(ts.seconds) * 1000 + Math.floor(ts.nanos / 1e6));
}

/** Marshals an Any (the shim reads it from stdin), as Go's proto.Marshal does. */
function marshalAny(v: PackedValue): Uint8Array {
  return toBinary(AnySchema, create(AnySchema, { typeUrl: v.typeUrl, value: v.value }));
}

/** Whether a process accepts connections on a shim's `unix://` address. */
function socketServed(address: string): Promise<boolean> {
  if (!address.startsWith("unix://")) return Promise.resolve(false);
  return new Promise((resolve) => {
    const socket = connect(socketPathOf(address));
    const done = (served: boolean) => {
      socket.destroy();
      resolve(served);
    };
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
    socket.setTimeout(1000, () => done(false));
  });
}

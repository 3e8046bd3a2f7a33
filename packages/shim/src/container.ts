import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { basename, isAbsolute, join, normalize } from "node:path";
import { Status } from "@berth/api/types/task";
import { AlreadyExistsError, FailedPreconditionError, InvalidArgumentError, NotFoundError } from "@berth/errdefs";
import { validateIdentifier } from "@berth/identifiers";
import { ProcessIO, type StdioRequest } from "./io.js";
import { mountAll, type RootfsMount, unmountAll } from "./mounts.js";
import type { ShimNative } from "./native.js";
import type { ExitRecord, Reaper } from "./reaper.js";
import { deleteStoppedState, specAllowsShortcuts, startViaExecFifo } from "./runc-direct.js";
import { DEFAULT_RUNTIME_ROOT, OciRuntime } from "./runtime.js";

/** The runc options a container was created with (containerd.runc.v1.Options, the fields we use). */
export interface RuntimeChoice {
  readonly binaryName: string;
  readonly root: string;
  readonly noPivotRoot: boolean;
}

/** What the container reports through events (the server turns these into containerd task events). */
export interface ContainerEvents {
  started(container: Container, process: ShimProcess): void;
  exit(container: Container, process: ShimProcess, exit: ExitRecord): void;
}

/** A process of a container: its init (execId "") or an exec'd one. */
export class ShimProcess {
  readonly execId: string;
  readonly stdio: StdioRequest;
  pid = 0;
  status: Status = Status.CREATED;
  exit: ExitRecord | undefined;
  io: ProcessIO | undefined;
  /** The exec's runtime-spec Process (JSON), until it is started. */
  spec: Uint8Array | undefined;
  /** Set as soon as the reaper has collected the process (before the exit is reported). */
  reaped = false;
  /** Set while a start is in flight: an exit seen meanwhile is reported after the start event. */
  starting: Promise<unknown> | undefined;
  readonly #waiters: ((exit: ExitRecord) => void)[] = [];

  constructor(execId: string, stdio: StdioRequest) {
    this.execId = execId;
    this.stdio = stdio;
  }

  wait(): Promise<ExitRecord> {
    if (this.exit !== undefined) return Promise.resolve(this.exit);
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  exited(exit: ExitRecord): void {
    this.exit = exit;
    this.status = Status.STOPPED;
    for (const w of this.#waiters.splice(0)) w(exit);
  }
}

function checkBundle(bundle: string): string {
  if (!isAbsolute(bundle) || normalize(bundle) !== bundle.replace(/\/+$/, "") || bundle.split("/").includes("..")) {
    throw new InvalidArgumentError(`bundle path ${JSON.stringify(bundle)} must be absolute and clean`, { bare: true });
  }
  if (!existsSync(join(bundle, "config.json"))) {
    throw new InvalidArgumentError(`bundle ${bundle} has no config.json`, { bare: true });
  }
  return bundle;
}

/** One container of the shared server. */
export class Container {
  readonly id: string;
  readonly namespace: string;
  readonly bundle: string;
  readonly init: ShimProcess;
  readonly execs = new Map<string, ShimProcess>();
  readonly runtime: OciRuntime;
  readonly #native: ShimNative;
  readonly #reaper: Reaper;
  readonly #events: ContainerEvents;
  readonly #mounted: boolean;
  readonly #cgroupsPath: string;
  /** runc without start/delete hooks: start and delete are done in-process (see runc-direct.ts). */
  readonly #direct: boolean;

  private constructor(
    native: ShimNative,
    reaper: Reaper,
    events: ContainerEvents,
    init: { id: string; namespace: string; bundle: string; stdio: StdioRequest; runtime: OciRuntime; mounted: boolean },
  ) {
    this.#native = native;
    this.#reaper = reaper;
    this.#events = events;
    this.id = init.id;
    this.namespace = init.namespace;
    this.bundle = init.bundle;
    this.runtime = init.runtime;
    this.#mounted = init.mounted;
    this.init = new ShimProcess("", init.stdio);
    const spec = specOf(init.bundle);
    this.#cgroupsPath = spec.linux?.cgroupsPath ?? "";
    this.#direct =
      basename(init.runtime.binary) === "runc" && specAllowsShortcuts(spec) && !process.env.BERTH_SHIM_NO_SHORTCUTS;
  }

  /** Mounts the rootfs, writes options.json and runs `runtime create`; the init is CREATED afterwards. */
  static async create(
    native: ShimNative,
    reaper: Reaper,
    events: ContainerEvents,
    req: {
      id: string;
      namespace: string;
      bundle: string;
      rootfs: readonly RootfsMount[];
      stdio: StdioRequest;
      runtime: RuntimeChoice;
      checkpoint: string;
    },
  ): Promise<Container> {
    validateIdentifier(req.id);
    const bundle = checkBundle(req.bundle);
    if (req.checkpoint !== "")
      throw new FailedPreconditionError("restore from a checkpoint is not supported", { bare: true });
    const binary = req.runtime.binaryName || "runc";
    const root = join(req.runtime.root || DEFAULT_RUNTIME_ROOT, req.namespace);
    // Read by `containerd-shim-berth-v2 delete` (and by containerd's own runc shim tools): same keys as Go's.
    writeFileSync(
      join(bundle, "options.json"),
      JSON.stringify({ binary_name: binary, root: req.runtime.root || DEFAULT_RUNTIME_ROOT }),
    );
    const runtime = new OciRuntime(reaper, binary, root, bundle);
    const rootfs = join(bundle, "rootfs");
    let mounted = false;
    if (req.rootfs.length > 0) {
      try {
        mountAll(native, req.rootfs, rootfs);
      } catch (err) {
        unmountAll(native, rootfs); // what the earlier mounts of the list stacked there
        throw err;
      }
      mounted = true;
    }
    const c = new Container(native, reaper, events, {
      id: req.id,
      namespace: req.namespace,
      bundle,
      stdio: req.stdio,
      runtime,
      mounted,
    });
    try {
      await c.#createInit(req.runtime.noPivotRoot);
    } catch (err) {
      if (mounted) unmountAll(native, rootfs);
      throw err;
    }
    return c;
  }

  async #createInit(noPivot: boolean): Promise<void> {
    const p = this.init;
    const io = await ProcessIO.open(this.#native, this.#reaper, p.stdio, this.bundle, "init", {
      id: this.id,
      namespace: this.namespace,
    });
    p.io = io;
    const pidFile = join(this.bundle, "init.pid");
    try {
      await this.runtime.create(this.id, this.bundle, pidFile, io.consoleSocket, io.fds, noPivot);
    } catch (err) {
      io.closeRuntimeFds();
      await io.close();
      throw err;
    }
    io.closeRuntimeFds();
    p.pid = Number.parseInt(readFileSync(pidFile, "utf8"), 10);
    this.#watch(p);
    if (p.stdio.terminal) io.attachConsole(p.stdio);
  }

  #watch(p: ShimProcess): void {
    void this.#reaper.watch(p.pid).then(async (exit) => {
      p.reaped = true;
      if (p.starting !== undefined) await p.starting.catch(() => {});
      await p.io?.drained();
      p.exited(exit);
      if (p.execId === "") p.io?.closeStdin();
      this.#events.exit(this, p, exit);
    });
  }

  process(execId: string): ShimProcess {
    if (execId === "") return this.init;
    const p = this.execs.get(execId);
    if (p === undefined) throw new NotFoundError(`process ${execId} does not exist`, { bare: true });
    return p;
  }

  /** Starts the init (`runtime start`) or an exec'd process (`runtime exec --detach`). */
  async start(execId: string): Promise<ShimProcess> {
    const p = this.process(execId);
    const starting = this.#start(p);
    p.starting = starting;
    try {
      await starting;
    } finally {
      p.starting = undefined;
    }
    return p;
  }

  async #start(p: ShimProcess): Promise<void> {
    const execId = p.execId;
    if (p.status !== Status.CREATED || (p.pid !== 0 && execId !== "")) {
      throw new FailedPreconditionError(`process ${execId || this.id} is not in created state`, { bare: true });
    }
    if (execId === "") {
      const stateDir = join(this.runtime.root, this.id);
      if (!(this.#direct && (await startViaExecFifo(this.#native, stateDir, () => !p.reaped)))) {
        await this.runtime.start(this.id);
      }
      p.io?.closeStdin();
      if (p.status === Status.CREATED) p.status = Status.RUNNING;
      this.#events.started(this, p);
      return;
    }
    if (this.init.status !== Status.RUNNING) {
      throw new FailedPreconditionError(`container ${this.id} is not running`, { bare: true });
    }
    const spec = join(this.bundle, `.exec-${execId}.json`);
    const pidFile = join(this.bundle, `.exec-${execId}.pid`);
    writeFileSync(spec, p.spec ?? new Uint8Array());
    let io: ProcessIO;
    try {
      io = await ProcessIO.open(this.#native, this.#reaper, p.stdio, this.bundle, `exec-${execId}`, {
        id: execId,
        namespace: this.namespace,
      });
    } catch (err) {
      rmSync(spec, { force: true });
      p.status = Status.STOPPED;
      throw err;
    }
    p.io = io;
    try {
      await this.runtime.exec(this.id, spec, pidFile, io.consoleSocket, io.fds);
      io.closeRuntimeFds();
      io.closeStdin();
      p.pid = Number.parseInt(readFileSync(pidFile, "utf8"), 10);
    } catch (err) {
      io.closeRuntimeFds();
      await io.close();
      p.status = Status.STOPPED;
      throw err;
    } finally {
      rmSync(spec, { force: true });
      rmSync(pidFile, { force: true });
    }
    p.status = Status.RUNNING;
    this.#watch(p);
    if (p.stdio.terminal) io.attachConsole(p.stdio);
    this.#events.started(this, p);
  }

  addExec(execId: string, stdio: StdioRequest, spec: Uint8Array): ShimProcess {
    validateIdentifier(execId);
    if (this.execs.has(execId)) throw new AlreadyExistsError(`id ${execId}`);
    if (this.init.status === Status.STOPPED)
      throw new FailedPreconditionError(`container ${this.id} is stopped`, { bare: true });
    const p = new ShimProcess(execId, stdio);
    p.spec = spec;
    this.execs.set(execId, p);
    return p;
  }

  async kill(execId: string, signal: number, all: boolean): Promise<void> {
    const p = this.process(execId);
    if (execId === "" && all) {
      await this.runtime.kill(this.id, signal, true);
      return;
    }
    if (p.status === Status.STOPPED || p.pid === 0) {
      throw new NotFoundError(`process ${execId || this.id} is not running (process already finished)`, { bare: true });
    }
    if (execId === "" && p.status === Status.CREATED) {
      await this.runtime.kill(this.id, signal, false);
      return;
    }
    try {
      process.kill(p.pid, signal);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ESRCH")
        throw new NotFoundError("process already finished", { bare: true });
      throw err;
    }
  }

  /** Deletes a stopped exec, or the container (runtime state, rootfs mount) once its init is stopped or never started. */
  async delete(execId: string): Promise<ShimProcess> {
    const p = this.process(execId);
    if (execId !== "") {
      if (p.status === Status.RUNNING || p.status === Status.PAUSED) {
        throw new FailedPreconditionError(`process ${execId} must be stopped before deletion`, { bare: true });
      }
      this.execs.delete(execId);
      await p.io?.close();
      return p;
    }
    if (p.status === Status.RUNNING || p.status === Status.PAUSED) {
      throw new FailedPreconditionError(`task ${this.id} must be stopped before deletion`, { bare: true });
    }
    const stopped = p.status === Status.STOPPED;
    if (!(this.#direct && stopped && deleteStoppedState(join(this.runtime.root, this.id)))) {
      await this.runtime.delete(this.id, !stopped).catch((err: unknown) => {
        if (!(err instanceof NotFoundError)) throw err;
      });
    }
    if (p.status !== Status.STOPPED) {
      // never started: the init was killed by the forced delete
      p.exited(p.exit ?? { status: 128 + 9, at: new Date() });
    }
    // containerd's shim waits for logging binaries here too (they get SIGTERM and a grace period)
    await Promise.all([p.io?.close(), ...[...this.execs.values()].map((e) => e.io?.close())]);
    if (this.#mounted) unmountAll(this.#native, join(this.bundle, "rootfs"));
    return p;
  }

  async pause(): Promise<void> {
    if (this.init.status !== Status.RUNNING)
      throw new FailedPreconditionError(`container ${this.id} is not running`, { bare: true });
    await this.runtime.pause(this.id);
    this.init.status = Status.PAUSED;
  }

  async resume(): Promise<void> {
    if (this.init.status !== Status.PAUSED)
      throw new FailedPreconditionError(`container ${this.id} is not paused`, { bare: true });
    await this.runtime.resume(this.id);
    this.init.status = Status.RUNNING;
  }

  async update(resources: Uint8Array): Promise<void> {
    const file = join(this.bundle, ".resources.json");
    writeFileSync(file, resources);
    try {
      await this.runtime.update(this.id, file);
    } finally {
      rmSync(file, { force: true });
    }
  }

  cgroupsPath(): string {
    return this.#cgroupsPath;
  }
}

interface SpecView {
  linux?: { cgroupsPath?: string };
  hooks?: Record<string, unknown[] | undefined>;
}

function specOf(bundle: string): SpecView {
  try {
    return JSON.parse(readFileSync(join(bundle, "config.json"), "utf8")) as SpecView;
  } catch {
    return { hooks: { poststart: [undefined], poststop: [undefined] } }; // unknown: no shortcuts
  }
}

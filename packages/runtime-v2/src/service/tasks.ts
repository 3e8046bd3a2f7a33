import type { ProcessSchema } from "@berth/api/types/task";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { StateResponse } from "@berth/api/task/v2";
import type { Tasks } from "@berth/api/services/tasks/v1";
import {
  InvalidArgumentError,
  NotFoundError,
  NotImplementedError,
  isInvalidArgument,
  isNotFound,
} from "@berth/errdefs";
import { adaptorFunc, parseAll } from "@berth/filters";
import { requireNamespace, validateIdentifier } from "@berth/identifiers";
import type { ContainerRecord, ContainerStore } from "@berth/metadata";
import { timestampFromDate } from "@berth/api";
import type { ServiceImpl } from "@connectrpc/connect";
import type { ShimManager, ShimTask } from "../manager.js";

export interface TasksServiceOptions {
  readonly containers: ContainerStore;
  readonly runtime: ShimManager;
}

const processOf = (id: string, s: StateResponse): MessageInitShape<typeof ProcessSchema> => ({
  id,
  pid: s.pid,
  status: s.status,
  stdin: s.stdin,
  stdout: s.stdout,
  stderr: s.stderr,
  terminal: s.terminal,
  exitStatus: s.exitStatus,
  ...(s.exitedAt ? { exitedAt: s.exitedAt } : {}),
});

/**
 * containerd.services.tasks.v1.Tasks over the shim manager (containerd's services/tasks local service). Every
 * call needs a namespace and works on the task of a container of that namespace; task events are published by
 * the shims themselves and forwarded by the daemon.
 */
export function tasksService(options: TasksServiceOptions): ServiceImpl<typeof Tasks> {
  const { containers, runtime } = options;

  const container = (ns: string, id: string): ContainerRecord => containers.get(ns, id);
  const task = (ns: string, id: string): ShimTask => {
    try {
      return runtime.get(ns, id);
    } catch (err) {
      if (isNotFound(err)) throw new NotFoundError(`task ${id} not found`, { bare: true });
      throw err;
    }
  };

  return {
    async create(req, ctx) {
      const ns = requireNamespace(ctx.requestHeader);
      const c = container(ns, req.containerId);
      if (req.checkpoint !== undefined && req.checkpoint.digest !== "") {
        throw new NotImplementedError("restoring a checkpoint is not supported: CRIU does not work on this host");
      }
      if (c.spec === undefined) throw new InvalidArgumentError(`container ${c.id} has no spec`);
      const { pid } = await runtime.create(
        ns,
        c.id,
        {
          spec: c.spec.value,
          runtime: req.runtimePath || c.runtime.name,
          ...(c.runtime.options ? { runtimeOptions: c.runtime.options } : {}),
          ...(req.options ? { taskOptions: { typeUrl: req.options.typeUrl, value: req.options.value } } : {}),
          rootfs: req.rootfs.map((m) => ({ type: m.type, source: m.source, target: m.target, options: m.options })),
          io: { stdin: req.stdin, stdout: req.stdout, stderr: req.stderr, terminal: req.terminal },
        },
        ctx.signal,
      );
      return { containerId: c.id, pid };
    },
    async start(req, ctx) {
      const ns = requireNamespace(ctx.requestHeader);
      const t = task(ns, req.containerId);
      const r = await t.task.start({ id: t.id, execId: req.execId }, { signal: ctx.signal });
      return { pid: r.pid };
    },
    async delete(req, ctx) {
      const ns = requireNamespace(ctx.requestHeader);
      container(ns, req.containerId);
      task(ns, req.containerId);
      const exit = await runtime.delete(ns, req.containerId);
      return { pid: exit.pid, exitStatus: exit.exitStatus, exitedAt: timestampFromDate(exit.exitedAt) };
    },
    async deleteProcess(req, ctx) {
      const ns = requireNamespace(ctx.requestHeader);
      const t = task(ns, req.containerId);
      if (req.execId === "") throw new InvalidArgumentError("exec id cannot be empty");
      const r = await t.task.delete({ id: t.id, execId: req.execId }, { signal: ctx.signal });
      return { id: req.execId, pid: r.pid, exitStatus: r.exitStatus, ...(r.exitedAt ? { exitedAt: r.exitedAt } : {}) };
    },
    async get(req, ctx) {
      const ns = requireNamespace(ctx.requestHeader);
      const t = task(ns, req.containerId);
      const s = await t.task.state({ id: t.id, execId: req.execId }, { signal: ctx.signal, timeoutMs: 2000 });
      return { process: processOf(req.execId || t.id, s) };
    },
    async list(_req, ctx) {
      const ns = requireNamespace(ctx.requestHeader);
      const states = await Promise.all(
        runtime.list(ns).map(async (t) => {
          try {
            return processOf(t.id, await t.task.state({ id: t.id }, { signal: ctx.signal, timeoutMs: 2000 }));
          } catch (err) {
            // a task that went away while listing is left out, as containerd does
            if (isNotFound(err)) return undefined;
            throw err;
          }
        }),
      );
      return { tasks: states.filter((p): p is MessageInitShape<typeof ProcessSchema> => p !== undefined) };
    },
    async kill(req, ctx) {
      const ns = requireNamespace(ctx.requestHeader);
      const t = task(ns, req.containerId);
      await t.task.kill({ id: t.id, execId: req.execId, signal: req.signal, all: req.all }, { signal: ctx.signal });
      return {};
    },
    async exec(req, ctx) {
      const ns = requireNamespace(ctx.requestHeader);
      if (req.execId === "") throw new InvalidArgumentError("exec id cannot be empty");
      const t = task(ns, req.containerId);
      try {
        validateIdentifier(req.execId);
      } catch (err) {
        if (isInvalidArgument(err)) {
          throw new InvalidArgumentError(`invalid exec id ${req.execId}: ${(err as Error).message}`, { bare: true });
        }
        throw err;
      }
      await t.task.exec(
        {
          id: t.id,
          execId: req.execId,
          stdin: req.stdin,
          stdout: req.stdout,
          stderr: req.stderr,
          terminal: req.terminal,
          ...(req.spec ? { spec: req.spec } : {}),
        },
        { signal: ctx.signal },
      );
      return {};
    },
    async resizePty(req, ctx) {
      const ns = requireNamespace(ctx.requestHeader);
      const t = task(ns, req.containerId);
      await t.task.resizePty(
        { id: t.id, execId: req.execId, width: req.width, height: req.height },
        { signal: ctx.signal },
      );
      return {};
    },
    async closeIO(req, ctx) {
      const ns = requireNamespace(ctx.requestHeader);
      const t = task(ns, req.containerId);
      if (req.stdin) await t.task.closeIO({ id: t.id, execId: req.execId, stdin: true }, { signal: ctx.signal });
      return {};
    },
    async pause(req, ctx) {
      const ns = requireNamespace(ctx.requestHeader);
      const t = task(ns, req.containerId);
      await t.task.pause({ id: t.id }, { signal: ctx.signal });
      return {};
    },
    async resume(req, ctx) {
      const ns = requireNamespace(ctx.requestHeader);
      const t = task(ns, req.containerId);
      await t.task.resume({ id: t.id }, { signal: ctx.signal });
      return {};
    },
    async listPids(req, ctx) {
      const ns = requireNamespace(ctx.requestHeader);
      const t = task(ns, req.containerId);
      const r = await t.task.pids({ id: t.id }, { signal: ctx.signal });
      return { processes: r.processes };
    },
    checkpoint(req, ctx) {
      const ns = requireNamespace(ctx.requestHeader);
      task(ns, req.containerId);
      // CRIU fails on this kernel class (`criu check`: vdso bounds) and crun is built without it.
      throw new NotImplementedError("checkpoint is not supported: CRIU does not work on this host");
    },
    async update(req, ctx) {
      const ns = requireNamespace(ctx.requestHeader);
      const t = task(ns, req.containerId);
      await t.task.update(
        { id: t.id, annotations: req.annotations, ...(req.resources ? { resources: req.resources } : {}) },
        { signal: ctx.signal },
      );
      return {};
    },
    async metrics(req, ctx) {
      const ns = requireNamespace(ctx.requestHeader);
      let filter: ReturnType<typeof parseAll>;
      try {
        filter = parseAll(req.filters);
      } catch (err) {
        if (isInvalidArgument(err)) throw err;
        throw new InvalidArgumentError((err as Error).message);
      }
      const selected = runtime.list(ns).filter((t) => {
        const fields: Record<string, string> = { id: t.id, namespace: t.namespace, runtime: t.runtime };
        return filter.match(adaptorFunc((path) => (path.length === 1 ? fields[path[0] as string] : undefined)));
      });
      const metrics = await Promise.all(
        selected.map(async (t) => {
          const r = await t.task.stats({ id: t.id }, { signal: ctx.signal });
          return { timestamp: timestampFromDate(new Date()), id: t.id, ...(r.stats ? { data: r.stats } : {}) };
        }),
      );
      return { metrics };
    },
    async wait(req, ctx) {
      const ns = requireNamespace(ctx.requestHeader);
      const t = task(ns, req.containerId);
      const r = await t.task.wait({ id: t.id, execId: req.execId }, { signal: ctx.signal });
      return { exitStatus: r.exitStatus, ...(r.exitedAt ? { exitedAt: r.exitedAt } : {}) };
    },
  };
}

/** `berth tasks ls|start|attach|exec|kill|pause|resume|ps|metrics|rm` (ctr tasks, over the Tasks service). */
import { writeFile } from "node:fs/promises";
import type { Process as TaskProcess } from "@berth/api/types/task";
import { isNotFound } from "@berth/errdefs";
import { toJson } from "@bufbuild/protobuf";
import { fromConnectError } from "@berth/errdefs/connect";
import type { Process, Spec } from "@berth/oci-spec";
import { Command, Option } from "commander";
import { type CommandContext, ExitError } from "../../context.js";
import { CliError, errorMessage } from "../../errors.js";
import { goTimeString } from "../../go-format.js";
import { TabWriter, writeJson } from "../../output.js";
import { PositionalCommand } from "../../positional-command.js";
import type { RunCommand } from "../../program.js";
import { parseSignal } from "../../signals.js";
import { DEFAULT_FIFO_DIR } from "../../task-io.js";

async function tasksClient(ctx: CommandContext) {
  const { Tasks } = await import("@berth/api/services/tasks/v1");
  return ctx.client(Tasks);
}

async function statusName(status: number): Promise<string> {
  const { Status } = await import("@berth/api/types/task");
  return Status[status] ?? "UNKNOWN";
}

/** `TASK PID STATUS` as ctr prints it (the last cell is not tab-terminated). */
export async function formatTaskTable(tasks: readonly TaskProcess[]): Promise<string> {
  const w = new TabWriter({ minWidth: 4, tabWidth: 8, padding: 4 });
  w.write("TASK\tPID\tSTATUS\t\n");
  for (const t of tasks) w.write(`${t.id}\t${t.pid}\t${await statusName(t.status)}\n`);
  return w.flush();
}

function listCommand(run: RunCommand): Command {
  return new Command("list")
    .alias("ls")
    .description("list tasks")
    .option("-q, --quiet", "print only the task ids")
    .action(async (opts: { quiet?: boolean }, command: Command) =>
      run(command, async (ctx) => {
        const { tasks } = await (await tasksClient(ctx)).list({ filter: "" }, ctx.callOptions());
        if (ctx.options.json) {
          const rows = [];
          for (const t of tasks) rows.push({ id: t.id, pid: t.pid, status: await statusName(t.status) });
          writeJson(ctx.out, rows);
        } else if (opts.quiet) ctx.out.stdout(tasks.map((t) => `${t.id}\n`).join(""));
        else ctx.out.stdout(await formatTaskTable(tasks));
      }),
    );
}

async function getContainer(ctx: CommandContext, id: string) {
  const { Containers } = await import("@berth/api/services/containers/v1");
  const { container } = await ctx.client(Containers).get({ id }, ctx.callOptions());
  if (container === undefined) throw new CliError(`container "${id}": not found`);
  return container;
}

interface StartFlags {
  nullIo?: boolean;
  fifoDir: string;
  pidFile?: string;
  detach?: boolean;
}

function startCommand(run: RunCommand): Command {
  return new Command("start")
    .description("start a container that has been created; the exit status is the container's")
    .argument("<id>", "container id")
    .option("--null-io", "send all IO to /dev/null")
    .addOption(new Option("--fifo-dir <dir>", "directory for the IO fifos").default(DEFAULT_FIFO_DIR))
    .option("--pid-file <path>", "write the task's pid to this file")
    .option("-d, --detach", "detach from the task once it has started")
    .action(async (id: string, flags: StartFlags, command: Command) =>
      run(command, async (ctx) => {
        const { Snapshots } = await import("@berth/api/services/snapshots/v1");
        const { runForeground, deleteTask } = await import("../run/process.js");
        const container = await getContainer(ctx, id);
        const spec = JSON.parse(Buffer.from(container.spec?.value ?? new Uint8Array()).toString() || "{}") as Spec;
        const rootfs =
          container.snapshotKey === ""
            ? []
            : (
                await ctx
                  .client(Snapshots)
                  .mounts({ snapshotter: container.snapshotter, key: container.snapshotKey }, ctx.callOptions())
              ).mounts;
        const tasks = await tasksClient(ctx);
        const code = await runForeground(ctx, {
          containerId: id,
          execId: "",
          terminal: spec.process?.terminal === true,
          detach: flags.detach === true || flags.nullIo === true,
          fifoDir: flags.fifoDir,
          create: async (stdio) => {
            await tasks.create({ containerId: id, rootfs, ...stdio }, ctx.callOptions());
          },
          onStarted: async (pid) => {
            if (flags.pidFile) await writeFile(flags.pidFile, `${pid}`);
          },
        });
        if (flags.detach || flags.nullIo) return;
        await deleteTask(ctx, id);
        if (code !== 0) throw new ExitError(code);
      }),
    );
}

function attachCommand(run: RunCommand): Command {
  return new Command("attach")
    .description("attach to the IO of a running container (started with fifos, e.g. by ctr run)")
    .argument("<id>", "container id")
    .action(async (id: string, _opts: unknown, command: Command) =>
      run(command, async (ctx) => {
        const { attachFifos } = await import("../../task-io.js");
        const { forwardSignals } = await import("../../signals.js");
        const tasks = await tasksClient(ctx);
        const { process: p } = await tasks.get({ containerId: id }, ctx.callOptions());
        if (p === undefined) throw new CliError(`no running task found: task ${id} not found`);
        if (p.stdout === "" && p.stdin === "")
          throw new CliError(`task ${id} has no IO to attach to (it runs with null IO)`);
        const exited = tasks.wait({ containerId: id }, {});
        const decoder = new TextDecoder();
        const { Writable } = await import("node:stream");
        const out = new Writable({
          write: (c: Buffer, _e, cb) => void ctx.out.stdoutBytes(c).then(() => cb(), cb),
        });
        const err = new Writable({
          write: (c: Buffer, _e, cb) => {
            ctx.out.stderr(decoder.decode(c, { stream: true }));
            cb();
          },
        });
        const io = attachFifos(
          { dir: "", stdin: p.stdin, stdout: p.stdout, stderr: p.stderr, terminal: p.terminal },
          { stdin: process.stdin, stdout: out, stderr: err },
        );
        io.processCreated();
        const stop = p.terminal
          ? () => {}
          : forwardSignals((signal) => void tasks.kill({ containerId: id, signal }, ctx.callOptions()).catch(() => {}));
        if (p.terminal && process.stdin.isTTY) process.stdin.setRawMode(true);
        try {
          const { exitStatus } = await exited;
          io.processExited();
          await Promise.race([io.wait(), new Promise((r) => setTimeout(r, 2000))]);
          if (exitStatus !== 0) throw new ExitError(exitStatus);
        } finally {
          stop();
          if (p.terminal && process.stdin.isTTY) process.stdin.setRawMode(false);
          io.close();
          process.stdin.destroy();
        }
      }),
    );
}

interface ExecFlags {
  execId: string;
  tty?: boolean;
  detach?: boolean;
  cwd?: string;
  user?: string;
  env: string[];
  fifoDir: string;
}

function execCommand(run: RunCommand): Command {
  return new PositionalCommand("exec")
    .description("run an additional process in a running container; the exit status is the process's")
    .argument("<id>", "container id")
    .argument("<cmd...>", "command and arguments")
    .requiredOption("--exec-id <id>", "id of the new process (unique within the task)")
    .option("-t, --tty", "allocate a TTY")
    .option("-d, --detach", "detach once the process has started")
    .option("--cwd <dir>", "working directory of the process")
    .option("--user <user>", "user[:group] to run as")
    .option("--env <KEY=value>", "add an environment variable (repeatable)", (v: string, p: string[]) => [...p, v], [])
    .addOption(new Option("--fifo-dir <dir>", "directory for the IO fifos").default(DEFAULT_FIFO_DIR))
    .action(async (id: string, args: string[], flags: ExecFlags, command: Command) =>
      run(command, async (ctx) => {
        const [{ validateIdentifier }, api, specLib, { runForeground }, { rootfsFromMounts }] = await Promise.all([
          import("@berth/identifiers"),
          import("@berth/api"),
          import("@berth/oci-spec/spec"),
          import("../run/process.js"),
          import("../run/container.js"),
        ]);
        validateIdentifier(flags.execId);
        const container = await getContainer(ctx, id);
        const spec = JSON.parse(Buffer.from(container.spec?.value ?? new Uint8Array()).toString() || "{}") as Spec;
        if (flags.user) {
          const { Snapshots } = await import("@berth/api/services/snapshots/v1");
          const { mounts } = await ctx
            .client(Snapshots)
            .mounts({ snapshotter: container.snapshotter, key: container.snapshotKey }, ctx.callOptions());
          await specLib.withUser(flags.user)(spec, {
            id,
            namespace: ctx.options.namespace,
            rootfs: rootfsFromMounts(mounts),
          });
        }
        const processSpec: Process = {
          ...(spec.process ?? { user: {}, cwd: "/" }),
          terminal: flags.tty === true,
          args,
        };
        if (flags.cwd) processSpec.cwd = flags.cwd;
        if (flags.env.length > 0) processSpec.env = specLib.replaceOrAppendEnv(processSpec.env ?? [], flags.env);
        const tasks = await tasksClient(ctx);
        const ids = { containerId: id, execId: flags.execId };
        const code = await runForeground(ctx, {
          ...ids,
          terminal: flags.tty === true,
          detach: flags.detach === true,
          fifoDir: flags.fifoDir,
          create: async (stdio) => {
            await tasks.exec(
              { ...ids, ...stdio, spec: api.packJsonAny(api.PROCESS_TYPE_URL, processSpec) },
              ctx.callOptions(),
            );
          },
        });
        if (flags.detach) return;
        await tasks.deleteProcess(ids, ctx.callOptions()).catch(() => {});
        if (code !== 0) throw new ExitError(code);
      }),
    );
}

function killCommand(run: RunCommand): Command {
  return (
    new Command("kill")
      .description("signal a container (default: its image's stop signal, else SIGTERM)")
      .argument("<id>", "container id")
      .option("-s, --signal <signal>", "signal to send")
      .option("--exec-id <id>", "signal this exec process")
      // `-a` after `kill` is this option, as in ctr; the global -a (--address) goes before the command
      .option("-a, --all", "signal all processes of the container")
      .action(async (id: string, flags: { signal?: string; execId?: string; all?: boolean }, command: Command) =>
        run(command, async (ctx) => {
          if (flags.all && flags.execId) throw new CliError("specify an exec-id or all; not both");
          const { STOP_SIGNAL_LABEL } = await import("../run/container.js");
          const container = await getContainer(ctx, id);
          const signal = parseSignal(flags.signal ?? container.labels[STOP_SIGNAL_LABEL] ?? "SIGTERM");
          await (await tasksClient(ctx)).kill(
            { containerId: id, execId: flags.execId ?? "", signal, all: flags.all === true },
            ctx.callOptions(),
          );
        }),
      )
  );
}

function simpleCommand(run: RunCommand, name: "pause" | "resume", description: string): Command {
  return new Command(name)
    .description(description)
    .argument("<id>", "container id")
    .action(async (id: string, _opts: unknown, command: Command) =>
      run(command, async (ctx) => {
        await (await tasksClient(ctx))[name]({ containerId: id }, ctx.callOptions());
      }),
    );
}

/** gogo's `%+v` of a runc ProcessDetails, as ctr prints an exec's INFO. */
function processDetailsString(execId: string): string {
  return `&ProcessDetails{ExecID:${execId},XXX_unrecognized:[],}`;
}

function psCommand(run: RunCommand): Command {
  return new Command("ps")
    .description("list the processes of a container")
    .argument("<id>", "container id")
    .action(async (id: string, _opts: unknown, command: Command) =>
      run(command, async (ctx) => {
        const [{ unpackAny }, runc] = await Promise.all([import("@berth/api"), import("@berth/api/runc/options")]);
        const { processes } = await (await tasksClient(ctx)).listPids({ containerId: id }, ctx.callOptions());
        const rows = processes.map((p) => {
          const details = p.info ? unpackAny(runc.ProcessDetailsSchema, p.info) : undefined;
          return { pid: p.pid, execId: details?.execId };
        });
        if (ctx.options.json) {
          writeJson(
            ctx.out,
            rows.map((r) => ({ pid: r.pid, ...(r.execId !== undefined ? { exec_id: r.execId } : {}) })),
          );
          return;
        }
        const w = new TabWriter({ minWidth: 1, tabWidth: 8, padding: 4 });
        w.write("PID\tINFO\n");
        for (const r of rows) w.write(`${r.pid}\t${r.execId === undefined ? "-" : processDetailsString(r.execId)}\n`);
        ctx.out.stdout(w.flush());
      }),
    );
}

type MetricRow = [string, string];

/** ctr's cgroup metric rows; the Go `%v` of a list is `[a b c]`. */
function metricRows(data: Record<string, unknown>, v2: boolean): MetricRow[] {
  const get = (path: string): unknown =>
    path
      .split(".")
      .reduce<unknown>((o, k) => (o && typeof o === "object" ? (o as Record<string, unknown>)[k] : undefined), data);
  const val = (v: unknown) => (Array.isArray(v) ? `[${v.join(" ")}]` : String(v ?? 0));
  const rows: MetricRow[] = [];
  if (!v2) {
    if (data.memory) {
      rows.push(["memory.usage_in_bytes", val(get("memory.usage.usage"))]);
      rows.push(["memory.limit_in_bytes", val(get("memory.usage.limit"))]);
      rows.push(["memory.stat.cache", val(get("memory.totalCache"))]);
    }
    if (data.cpu) {
      rows.push(["cpuacct.usage", val(get("cpu.usage.total"))]);
      rows.push(["cpuacct.usage_percpu", val(get("cpu.usage.perCpu") ?? [])]);
    }
    if (data.pids) {
      rows.push(["pids.current", val(get("pids.current"))]);
      rows.push(["pids.limit", val(get("pids.limit"))]);
    }
    return rows;
  }
  if (data.pids) {
    rows.push(["pids.current", val(get("pids.current"))]);
    rows.push(["pids.limit", val(get("pids.limit"))]);
  }
  if (data.cpu) {
    for (const k of ["usageUsec", "userUsec", "systemUsec", "nrPeriods", "nrThrottled", "throttledUsec"]) {
      rows.push([`cpu.${k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)}`, val(get(`cpu.${k}`))]);
    }
  }
  if (data.memory) {
    rows.push(["memory.usage", val(get("memory.usage"))]);
    rows.push(["memory.usage_limit", val(get("memory.usageLimit"))]);
    rows.push(["memory.swap_usage", val(get("memory.swapUsage"))]);
    rows.push(["memory.swap_limit", val(get("memory.swapLimit"))]);
  }
  return rows;
}

function metricsCommand(run: RunCommand): Command {
  return new Command("metrics")
    .alias("metric")
    .description("get one data point of a task's cgroup metrics")
    .argument("<id>", "container id")
    .addOption(new Option("--format <format>", '"table" or "json"').default("table"))
    .action(async (id: string, flags: { format: string }, command: Command) =>
      run(command, async (ctx) => {
        if (flags.format !== "table" && flags.format !== "json") throw new CliError("format must be table or json");
        const [{ unpackAny }, v1, v2] = await Promise.all([
          import("@berth/api"),
          import("@berth/api/cgroups/v1"),
          import("@berth/api/cgroups/v2"),
        ]);
        const { metrics } = await (await tasksClient(ctx)).metrics({ filters: [`id==${id}`] }, ctx.callOptions());
        const metric = metrics[0];
        if (metric?.data === undefined) throw new CliError(`no metrics for task ${id}`);
        const m1 = unpackAny(v1.MetricsSchema, metric.data);
        const m2 = m1 === undefined ? unpackAny(v2.MetricsSchema, metric.data) : undefined;
        if (m1 === undefined && m2 === undefined) {
          throw new CliError("cannot convert metric data to cgroups.Metrics or windows.Statistics");
        }
        const json = (
          m1 !== undefined ? toJson(v1.MetricsSchema, m1) : toJson(v2.MetricsSchema, m2 as never)
        ) as Record<string, unknown>;
        if (flags.format === "json" || ctx.options.json) {
          ctx.out.stdout(`${JSON.stringify(json, null, 2)}\n`);
          return;
        }
        const w = new TabWriter({ minWidth: 1, tabWidth: 8, padding: 4 });
        w.write("ID\tTIMESTAMP\t\n");
        w.write(`${metric.id}\t${goTimeString(metric.timestamp)}\t\n\n`);
        w.write("METRIC\tVALUE\t\n");
        for (const [k, v] of metricRows(json, m1 === undefined)) w.write(`${k}\t${v}\t\n`);
        ctx.out.stdout(w.flush());
      }),
    );
}

function deleteCommand(run: RunCommand): Command {
  return new Command("delete")
    .aliases(["del", "remove", "rm"])
    .description("delete one or more tasks")
    .argument("<ids...>", "container ids")
    .option("-f, --force", "kill the task's processes first")
    .option("--exec-id <id>", "delete this exec process instead")
    .action(async (ids: string[], flags: { force?: boolean; execId?: string }, command: Command) =>
      run(command, async (ctx) => {
        const tasks = await tasksClient(ctx);
        const forceKill = async (containerId: string, execId: string) => {
          if (!flags.force) return;
          const waited = tasks.wait({ containerId, execId }, {});
          waited.catch(() => {});
          await tasks.kill({ containerId, execId, signal: 9, all: execId === "" }, ctx.callOptions()).catch(() => {});
          await waited.catch(() => {});
        };
        if (flags.execId) {
          const [id] = ids;
          await forceKill(id as string, flags.execId);
          const res = await tasks.deleteProcess({ containerId: id as string, execId: flags.execId }, ctx.callOptions());
          if (res.exitStatus !== 0) throw new ExitError(res.exitStatus);
          return;
        }
        let failed = false;
        for (const id of ids) {
          try {
            await forceKill(id, "");
            const res = await tasks.delete({ containerId: id }, ctx.callOptions());
            if (res.exitStatus !== 0)
              ctx.out.stderr(`berth: task ${id} exit with non-zero exit code ${res.exitStatus}\n`);
          } catch (err) {
            failed = true;
            const typed = fromConnectError(err);
            ctx.out.stderr(
              `berth: ${isNotFound(typed) ? "failed to load task from" : "unable to delete"} ${id}: ${errorMessage(err, ctx.options.address)}\n`,
            );
          }
        }
        if (failed) throw new ExitError(1);
      }),
    );
}

export function tasksCommand(run: RunCommand): Command {
  return new Command("tasks")
    .aliases(["t", "task"])
    .description("manage tasks")
    .addCommand(listCommand(run))
    .addCommand(startCommand(run))
    .addCommand(attachCommand(run))
    .addCommand(execCommand(run))
    .addCommand(killCommand(run))
    .addCommand(simpleCommand(run, "pause", "pause a running container"))
    .addCommand(simpleCommand(run, "resume", "resume a paused container"))
    .addCommand(psCommand(run))
    .addCommand(metricsCommand(run))
    .addCommand(deleteCommand(run));
}

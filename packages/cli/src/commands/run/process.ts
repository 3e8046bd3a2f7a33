/**
 * Running a task's process in the foreground as ctr does: fifos wired to this terminal, Wait before Start so the
 * exit is never missed, a raw terminal with size updates for `-t`, signals passed on otherwise, and the process's
 * exit status as ours.
 */
import { Writable } from "node:stream";
import { isNotFound } from "@berth/errdefs";
import { fromConnectError } from "@berth/errdefs/connect";
import type { CommandContext } from "../../context.js";
import { forwardSignals } from "../../signals.js";
import { type AttachedIO, attachFifos, createFifoSet, type FifoSet } from "../../task-io.js";

/** The stdio paths a Create or Exec request carries. */
export interface StdioPaths {
  readonly stdin: string;
  readonly stdout: string;
  readonly stderr: string;
  readonly terminal: boolean;
}

export interface ForegroundOptions {
  readonly containerId: string;
  /** Empty for the init process. */
  readonly execId: string;
  readonly terminal: boolean;
  /** Start and return at once, with the process's IO sent nowhere (ctr's `-d` with `--null-io`). */
  readonly detach: boolean;
  readonly fifoDir: string;
  /** Creates the process (Tasks.Create or Tasks.Exec) with these stdio paths. */
  create(stdio: StdioPaths): Promise<void>;
  /** Called with the pid once the process runs (for `--pid-file`). */
  onStarted?(pid: number): void | Promise<void>;
}

async function tasksClient(ctx: CommandContext) {
  const { Tasks } = await import("@berth/api/services/tasks/v1");
  return ctx.client(Tasks);
}

/** A Writable over the command's Output, so tests see what the container printed. */
function outputWritable(write: (chunk: Buffer) => Promise<void> | void): Writable {
  return new Writable({
    write(chunk: Buffer, _enc, cb) {
      Promise.resolve(write(chunk)).then(() => cb(), cb);
    },
  });
}

/** How long to wait for output after the exit before giving up on a shim that keeps its pipes open. */
const DRAIN_TIMEOUT_MS = 5000;

/** Creates, starts and (unless detached) waits for a process; resolves with its exit status (0 when detached). */
export async function runForeground(ctx: CommandContext, opts: ForegroundOptions): Promise<number> {
  const tasks = await tasksClient(ctx);
  const ids = { containerId: opts.containerId, execId: opts.execId };
  if (opts.detach) {
    await opts.create({ stdin: "", stdout: "", stderr: "", terminal: opts.terminal });
    const { pid } = await tasks.start(ids, ctx.callOptions());
    await opts.onStarted?.(pid);
    return 0;
  }

  const stdin = process.stdin;
  const tty = opts.terminal && stdin.isTTY === true;
  const decoder = new TextDecoder();
  const stdout = outputWritable((c) => ctx.out.stdoutBytes(c));
  const stderr = outputWritable((c) => ctx.out.stderr(decoder.decode(c, { stream: true })));
  let fifos: FifoSet | undefined;
  let io: AttachedIO | undefined;
  let stopSignals: (() => void) | undefined;
  let onResize: (() => void) | undefined;
  try {
    fifos = await createFifoSet(opts.fifoDir, opts.containerId + (opts.execId ? `-${opts.execId}` : ""), opts.terminal);
    io = attachFifos(fifos, {
      stdin,
      stdout,
      stderr,
      // with a terminal, the end of our input is not the end of the container's (ctr never closes a pty's input)
      ...(opts.terminal
        ? {}
        : {
            onStdinEnd: () => {
              void tasks.closeIO({ ...ids, stdin: true }, ctx.callOptions()).catch(() => {});
            },
          }),
    });
    await opts.create({ stdin: fifos.stdin, stdout: fifos.stdout, stderr: fifos.stderr, terminal: opts.terminal });
    io.processCreated();

    // Wait first: an exit between Start and Wait must not be lost
    const exited = tasks.wait(ids, {});
    exited.catch(() => {});
    if (tty) {
      stdin.setRawMode(true);
    } else if (!opts.terminal) {
      stopSignals = forwardSignals((signal) => {
        void tasks.kill({ ...ids, signal, all: false }, ctx.callOptions()).catch(() => {});
      });
    }
    const { pid } = await tasks.start(ids, ctx.callOptions());
    await opts.onStarted?.(pid);
    if (tty && process.stdout.isTTY) {
      // the pty exists once the process runs: size it now and on every change of ours
      const resize = () => {
        const { columns = 80, rows = 24 } = process.stdout;
        void tasks.resizePty({ ...ids, width: columns, height: rows }, ctx.callOptions()).catch(() => {});
      };
      onResize = resize;
      process.stdout.on("resize", resize);
      resize();
    }
    const { exitStatus } = await exited;
    io.processExited();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      io.wait(),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, DRAIN_TIMEOUT_MS);
      }),
    ]);
    clearTimeout(timer);
    return exitStatus;
  } finally {
    stopSignals?.();
    if (onResize) process.stdout.off("resize", onResize);
    if (tty) stdin.setRawMode(false);
    io?.close();
    // our end of standard input must not keep the process alive
    stdin.destroy();
    if (fifos) await io?.cleanup();
  }
}

/** Deletes a task (or exec process) and returns its exit status; a missing task is not an error. */
export async function deleteTask(ctx: CommandContext, containerId: string): Promise<number | undefined> {
  const tasks = await tasksClient(ctx);
  try {
    const res = await tasks.delete({ containerId }, ctx.callOptions());
    return res.exitStatus;
  } catch (err) {
    if (isNotFound(fromConnectError(err))) return undefined;
    throw err;
  }
}

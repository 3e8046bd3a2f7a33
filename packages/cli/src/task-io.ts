/**
 * Task IO over named pipes, as ctr does it: a fresh directory under the fifo root holds `<id>-stdin`,
 * `<id>-stdout` and `<id>-stderr`; the paths go to Tasks.Create / Exec, and the shim opens the other ends.
 *
 * Opening a fifo for reading blocks until a writer appears (and would tie up a libuv pool thread), so each read
 * side is opened non-blocking while we also hold a write handle of our own: the read never blocks and never sees
 * an early end of file. That extra writer is closed once the process has exited, so the stream then ends when
 * the shim closes its side, after everything it wrote has been read.
 */
import { execFile } from "node:child_process";
import { constants, closeSync, openSync } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { Socket } from "node:net";
import { join } from "node:path";
import type { Readable, Writable } from "node:stream";
import { promisify } from "node:util";

/** Where ctr puts its fifos; containerd's Go shim expects clients on the same host to use it too. */
export const DEFAULT_FIFO_DIR = "/run/containerd/fifo";

const execFileAsync = promisify(execFile);

export interface FifoSet {
  readonly dir: string;
  readonly stdin: string;
  readonly stdout: string;
  /** Empty with a terminal: the pty carries both streams. */
  readonly stderr: string;
  readonly terminal: boolean;
}

/** Creates the fifos (mode 0700) in a new directory under `root`. */
export async function createFifoSet(root: string, id: string, terminal: boolean, stdin = true): Promise<FifoSet> {
  await mkdir(root, { recursive: true, mode: 0o700 });
  const dir = await mkdtemp(join(root, `${id.slice(0, 16)}-`));
  const set: FifoSet = {
    dir,
    stdin: stdin ? join(dir, `${id}-stdin`) : "",
    stdout: join(dir, `${id}-stdout`),
    stderr: terminal ? "" : join(dir, `${id}-stderr`),
    terminal,
  };
  // Node has no mkfifo(3); one mkfifo(1) run makes all of them
  await execFileAsync("mkfifo", ["-m", "0700", ...[set.stdin, set.stdout, set.stderr].filter((p) => p !== "")]);
  return set;
}

/** An open read side and the writer we hold until the process exits. */
interface ReadEnd {
  readonly stream: Readable;
  readonly done: Promise<void>;
  releaseWriter(): void;
}

function openReadEnd(path: string): ReadEnd {
  const holder = openSync(path, constants.O_RDWR | constants.O_NONBLOCK);
  const fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  const stream = new Socket({ fd, readable: true, writable: false });
  let held = true;
  const done = new Promise<void>((resolve) => {
    stream.once("end", () => resolve());
    stream.once("close", () => resolve());
    stream.once("error", () => resolve());
  });
  return {
    stream,
    done,
    releaseWriter() {
      if (!held) return;
      held = false;
      closeSync(holder);
    },
  };
}

export interface AttachedIO {
  /** The shim has opened its ends (Create or Exec returned): standard input may now be closed at its end. */
  processCreated(): void;
  /** Resolves when stdout and stderr have reached their end (after {@link AttachedIO.processExited}). */
  wait(): Promise<void>;
  /** The process has exited: stop holding the fifos open so their streams can end. */
  processExited(): void;
  /** Tears everything down now (failure paths). */
  close(): void;
  /** Removes the fifo directory. */
  cleanup(): Promise<void>;
}

export interface AttachOptions {
  readonly stdin?: Readable;
  readonly stdout: Writable;
  readonly stderr: Writable;
  /** Called once standard input has ended (ctr then calls Tasks.CloseIO so the process sees EOF). */
  readonly onStdinEnd?: () => void;
}

/** Wires the fifos to local streams: input into stdin, stdout and stderr out. */
export function attachFifos(set: FifoSet, options: AttachOptions): AttachedIO {
  const readers: ReadEnd[] = [];
  let markCreated = () => {};
  const created = new Promise<void>((resolve) => {
    markCreated = resolve;
  });
  let stdinSocket: Socket | undefined;
  let stdinFd: number | undefined;
  const out = openReadEnd(set.stdout);
  readers.push(out);
  out.stream.pipe(options.stdout, { end: false });
  if (set.stderr !== "") {
    const err = openReadEnd(set.stderr);
    readers.push(err);
    err.stream.pipe(options.stderr, { end: false });
  }
  if (set.stdin !== "" && options.stdin !== undefined) {
    // O_RDWR: opening never blocks, whether or not the shim has its read side open yet
    stdinFd = openSync(set.stdin, constants.O_RDWR | constants.O_NONBLOCK);
    const sock = new Socket({ fd: stdinFd, readable: false, writable: true });
    stdinSocket = sock;
    sock.on("error", () => {});
    const input = options.stdin;
    input.pipe(sock, { end: false });
    input.once("end", () => {
      // the empty write's callback runs once everything queued before it has reached the pipe
      sock.write(Buffer.alloc(0), () => {
        void created.then(() => {
          // only now: closing the last handle before the shim opened the fifo would discard its buffered bytes
          sock.destroy();
          options.onStdinEnd?.();
        });
      });
    });
  }
  const stopInput = () => {
    if (options.stdin !== undefined && stdinSocket !== undefined) options.stdin.unpipe(stdinSocket);
    stdinSocket?.destroy();
    stdinSocket = undefined;
  };
  return {
    processCreated: () => markCreated(),
    wait: async () => {
      await Promise.all(readers.map((r) => r.done));
    },
    processExited: () => {
      stopInput();
      for (const r of readers) r.releaseWriter();
    },
    close: () => {
      stopInput();
      for (const r of readers) {
        r.releaseWriter();
        r.stream.destroy();
      }
    },
    cleanup: () => rm(set.dir, { recursive: true, force: true }),
  };
}

import { mkdirSync, openSync } from "node:fs";
import { Socket } from "node:net";
import { dirname, join } from "node:path";
import { ReadStream } from "node:tty";
import { InvalidArgumentError } from "@berth/errdefs";
import { BinaryLogger } from "./binary-logger.js";
import type { ShimNative } from "./native.js";
import type { Reaper } from "./reaper.js";

/** The stdio a client asked for: fifo paths (or `file://` / `binary://` URIs), and whether the process has a tty. */
export interface StdioRequest {
  readonly stdin: string;
  readonly stdout: string;
  readonly stderr: string;
  readonly terminal: boolean;
}

/**
 * A process's stdio. Without a tty the fifos are handed to the OCI runtime as fds 0-2 and inherited by the
 * container process: no copying in the shim, and the client sees EOF when the process (the last writer)
 * exits. Until the process is started we keep one extra write end of the stdin fifo, so that the process
 * cannot read EOF before a client that opens its side late (between Create and Start) has done so; after
 * that, stdin ends when the client closes its side, as with containerd's shim. With a tty, runc sends the
 * pty master to our console socket and we copy between it and the fifos. A `binary://` stdout starts a logging
 * binary (see binary-logger.ts) that gets both output streams; stdin is then /dev/null, as with containerd.
 */
export class ProcessIO {
  readonly #native: ShimNative;
  /** fds given to the runtime (-1: /dev/null); ours to close after the runtime call. */
  readonly fds: number[] = [-1, -1, -1];
  #stdinHold = -1;
  #consoleListen = -1;
  readonly consoleSocket: string | undefined;
  #master: Socket | undefined;
  #masterFd = -1;
  #outputs: Socket[] = [];
  #outputDone: Promise<void> = Promise.resolve();
  #logger: BinaryLogger | undefined;
  /** With a tty and a logging binary: the write end of its stdout pipe, until the copy from the pty owns it. */
  #loggerOut = -1;

  private constructor(native: ShimNative, consoleSocket: string | undefined) {
    this.#native = native;
    this.consoleSocket = consoleSocket;
  }

  /**
   * Opens the stdio for a process about to be created; `dir` holds the console socket (short path). `owner` is
   * what a logging binary is told in CONTAINER_ID / CONTAINER_NAMESPACE (the exec id for an exec, as containerd).
   */
  static async open(
    native: ShimNative,
    reaper: Reaper,
    req: StdioRequest,
    dir: string,
    name: string,
    owner: { id: string; namespace: string },
  ): Promise<ProcessIO> {
    const binary = req.stdout.startsWith("binary:");
    if (req.terminal) {
      const path = join(dir, `.console-${name}.sock`);
      const io = new ProcessIO(native, path);
      if (binary) {
        // the tty output goes to the logger's stdout pipe; its stderr pipe only ever reads EOF
        const logger = await BinaryLogger.start(native, reaper, req.stdout, owner.id, owner.namespace);
        io.#logger = logger;
        native.close(logger.stderr);
        io.#loggerOut = logger.stdout;
      }
      try {
        io.#consoleListen = native.listenUnix(path);
      } catch (err) {
        void io.close();
        throw err;
      }
      return io;
    }
    const io = new ProcessIO(native, undefined);
    if (binary) {
      const logger = await BinaryLogger.start(native, reaper, req.stdout, owner.id, owner.namespace);
      io.#logger = logger;
      io.fds[1] = logger.stdout;
      io.fds[2] = logger.stderr;
      return io;
    }
    try {
      if (req.stdin !== "") {
        io.#stdinHold = native.openFifo(fifoPath(req.stdin), "rw");
        io.fds[0] = native.openFifo(fifoPath(req.stdin), "r");
      }
      io.fds[1] = openOutput(native, req.stdout);
      io.fds[2] = req.stderr === req.stdout && io.fds[1] >= 0 ? io.fds[1] : openOutput(native, req.stderr);
    } catch (err) {
      io.closeRuntimeFds();
      void io.close();
      throw err;
    }
    return io;
  }

  /** Drops our copies of the runtime's stdio once the runtime has passed them on. */
  closeRuntimeFds(): void {
    const seen = new Set<number>();
    for (const fd of this.fds) {
      if (fd >= 0 && !seen.has(fd)) this.#native.close(fd);
      seen.add(fd);
    }
    this.fds.fill(-1);
  }

  /** After create/exec with a tty: takes the pty master from the console socket and starts copying. */
  attachConsole(req: StdioRequest): void {
    if (this.#consoleListen < 0) return;
    const fd = this.#native.recvFd(this.#consoleListen);
    this.#native.close(this.#consoleListen);
    this.#consoleListen = -1;
    if (fd < 0) throw new Error("the runtime did not send a pty master on the console socket");
    this.#masterFd = fd;
    // A tty handle (net.Socket refuses tty fds); it is a duplex stream, so input is written to it too.
    const master: Socket = new ReadStream(fd);
    this.#master = master;
    master.on("error", () => {}); // EIO once the last slave fd closes: the end of output
    const outFd =
      this.#loggerOut >= 0
        ? this.#loggerOut
        : req.stdout !== ""
          ? this.#native.openFifo(fifoPath(req.stdout), "w")
          : -1;
    this.#loggerOut = -1;
    if (outFd >= 0) {
      const out = new Socket({ fd: outFd, readable: false, writable: true });
      out.on("error", () => {});
      this.#outputs.push(out);
      this.#outputDone = new Promise((resolve) => {
        master.on("close", () => out.end(resolve));
      });
      master.pipe(out, { end: false });
    } else {
      master.resume();
    }
    if (req.stdin !== "") {
      const input = new Socket({
        fd: this.#native.openFifo(fifoPath(req.stdin), "rw"),
        readable: true,
        writable: false,
      });
      input.on("error", () => {});
      this.#outputs.push(input);
      input.pipe(master, { end: false });
    }
  }

  resize(cols: number, rows: number): void {
    if (this.#masterFd >= 0) this.#native.setWinsize(this.#masterFd, cols, rows);
  }

  /** Drops our write end of the stdin fifo (at start, and on CloseIO): EOF once the client closes its side. */
  closeStdin(): void {
    if (this.#stdinHold >= 0) this.#native.close(this.#stdinHold);
    this.#stdinHold = -1;
  }

  /** Resolves when the tty output has been copied out (immediately without a tty). */
  drained(timeoutMs = 2000): Promise<void> {
    return Promise.race([this.#outputDone, new Promise<void>((r) => setTimeout(r, timeoutMs).unref())]);
  }

  /**
   * Releases the stdio (at delete, or after a failed create). A logging binary that is still running gets
   * SIGTERM, and SIGKILL if it lingers; the promise settles when it is gone.
   */
  close(): Promise<void> {
    const logger = this.#logger;
    this.#logger = undefined;
    this.#closeLocal();
    return logger === undefined ? Promise.resolve() : logger.stop();
  }

  #closeLocal(): void {
    if (this.#loggerOut >= 0) this.#native.close(this.#loggerOut);
    this.#loggerOut = -1;
    this.closeStdin();
    if (this.#consoleListen >= 0) this.#native.close(this.#consoleListen);
    this.#consoleListen = -1;
    this.#master?.destroy();
    for (const s of this.#outputs) s.destroy();
    this.#outputs = [];
  }
}

function fifoPath(uri: string): string {
  if (uri.startsWith("fifo://")) return uri.slice("fifo://".length);
  return uri;
}

function openOutput(native: ShimNative, uri: string): number {
  if (uri === "") return -1;
  if (uri.startsWith("file://")) {
    const path = decodeURIComponent(new URL(uri).pathname);
    mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
    return openSync(path, "a", 0o640);
  }
  if (uri.startsWith("binary:"))
    throw new InvalidArgumentError("a binary:// log URI must be the stdout of a process", { bare: true });
  return native.openFifo(fifoPath(uri), "w");
}

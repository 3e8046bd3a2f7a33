import { rmSync } from "node:fs";
import { Task } from "@berth/api/task/v2";
import { createTtrpcServer, type TtrpcServer } from "@berth/ttrpc";
import { type ShimNative, shimNative } from "./native.js";
import { type EventPublisher, NullEventPublisher, TtrpcEventPublisher } from "./publisher.js";
import { Reaper } from "./reaper.js";
import { TaskService } from "./task-service.js";

export interface ShimServerOptions {
  /** Unix socket path to serve on. */
  readonly socket: string;
  readonly namespace: string;
  /** The daemon's ttrpc address for events (TTRPC_ADDRESS); none: events are dropped. */
  readonly ttrpcAddress?: string;
  /** How long an idle server (no containers, no connections) waits for new work before it exits. */
  readonly lingerMs?: number;
  /** Called once the server has stopped (the process entry point exits then). */
  readonly onStopped?: () => void;
}

/**
 * The shared shim server: one Node process serving containerd.task.v2.Task for every container of one daemon
 * and namespace. It is a child subreaper (see Reaper) and exits once it has had no container and no client
 * connection for `lingerMs`.
 */
export class ShimServer {
  readonly #options: ShimServerOptions;
  readonly native: ShimNative;
  readonly reaper: Reaper;
  readonly publisher: EventPublisher;
  readonly #ttrpc: TtrpcServer;
  readonly #tasks: TaskService;
  #connections = 0;
  #idleTimer: NodeJS.Timeout | undefined;
  #stopping = false;

  constructor(options: ShimServerOptions) {
    this.#options = options;
    this.native = shimNative();
    this.reaper = new Reaper(this.native);
    this.publisher =
      options.ttrpcAddress !== undefined && options.ttrpcAddress !== ""
        ? new TtrpcEventPublisher(options.ttrpcAddress)
        : new NullEventPublisher();
    this.#tasks = new TaskService({
      namespace: options.namespace,
      native: this.native,
      reaper: this.reaper,
      publisher: this.publisher,
      maybeIdle: () => this.#maybeIdle(),
    });
    this.#ttrpc = createTtrpcServer();
    this.#ttrpc.registerService(Task, this.#tasks.handlers());
  }

  get namespace(): string {
    return this.#options.namespace;
  }

  async listen(): Promise<void> {
    const server = this.#ttrpc;
    // Count connections so an idle server does not exit under a client that has just connected.
    const serve = server.serve.bind(server);
    server.serve = (socket) => {
      this.#connections++;
      this.#cancelIdle();
      socket.once("close", () => {
        this.#connections--;
        this.#maybeIdle();
      });
      serve(socket);
    };
    await server.listen(this.#options.socket, { mode: 0o600 });
    this.#maybeIdle();
  }

  #cancelIdle(): void {
    if (this.#idleTimer !== undefined) clearTimeout(this.#idleTimer);
    this.#idleTimer = undefined;
  }

  #maybeIdle(): void {
    if (this.#stopping || this.#tasks.size > 0 || this.#connections > 0) return;
    this.#cancelIdle();
    this.#idleTimer = setTimeout(() => {
      if (this.#tasks.size === 0 && this.#connections === 0) void this.stop();
    }, this.#options.lingerMs ?? 5000);
  }

  /** Stops serving: removes the socket first (so a new launcher starts a fresh server), then exits. */
  async stop(): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    this.#cancelIdle();
    rmSync(this.#options.socket, { force: true });
    await this.publisher.flush();
    await this.#ttrpc.close();
    this.#tasks.close();
    this.publisher.close();
    this.reaper.close();
    this.#options.onStopped?.();
  }
}

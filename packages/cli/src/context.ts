/** What a command's action receives: resolved global options, the output, and typed clients. */
import type { DescService } from "@bufbuild/protobuf";
import { type CallOptions, type Client, createClient, type Interceptor, type Transport } from "@connectrpc/connect";
import type { Command } from "commander";
import { type Env, type GlobalFlags, type GlobalOptions, resolveGlobalOptions } from "./config.js";
import { attachDirectStreams, type Connection, type ConnectionOptions, createConnection } from "./connection.js";
import { type ByteSource, stdinSource } from "./input.js";
import type { Output } from "./output.js";

/** Information about this client, printed by `berth version`. */
export interface ClientInfo {
  readonly version: string;
  readonly revision: string;
  readonly nodeVersion: string;
}

/** What the program depends on; tests replace all of it. */
export interface CliDeps {
  readonly env: Env;
  readonly out: Output;
  /** Opens the connection; tests pass one over an in-memory router transport. */
  readonly connect?: (options: ConnectionOptions) => Connection;
  readonly clientInfo?: ClientInfo;
  /** Standard input as a byte source (`content ingest`); defaults to the process's. */
  readonly stdin?: () => ByteSource;
}

export interface CommandContext {
  readonly options: GlobalOptions;
  readonly out: Output;
  readonly clientInfo: ClientInfo;
  /** A client for one service over the shared connection (opened on first use). */
  client<S extends DescService>(service: S): Client<S>;
  /** The shared connection's transport (opened on first use), for library clients such as the content proxy. */
  transport(): Transport;
  /** Options for one call: the per-command deadline (`--timeout`) as a remaining `timeoutMs`. */
  callOptions(): CallOptions;
  /** Standard input, opened on first use. */
  stdin(): ByteSource;
}

/** Thrown by a command to end with exit status 1 after it has already printed what went wrong. */
export class ExitError extends Error {
  override readonly name = "ExitError";
  constructor(readonly exitCode: number) {
    super(`exit status ${exitCode}`);
  }
}

function debugInterceptor(out: Output): Interceptor {
  return (next) => async (req) => {
    const started = performance.now();
    out.stderr(`berth: debug: call ${req.url.replace(/^https?:\/\/[^/]+/, "")}\n`);
    try {
      const res = await next(req);
      out.stderr(`berth: debug: ok ${req.method.name} ${(performance.now() - started).toFixed(1)}ms\n`);
      return res;
    } catch (err) {
      out.stderr(`berth: debug: failed ${req.method.name} ${(performance.now() - started).toFixed(1)}ms\n`);
      throw err;
    }
  };
}

/** The state of one command run: lazily opened connection plus the deadline. */
export class CommandSession implements CommandContext {
  readonly options: GlobalOptions;
  readonly out: Output;
  readonly clientInfo: ClientInfo;
  readonly #deps: CliDeps;
  readonly #deadline: number | undefined;
  #connection: Connection | undefined;

  constructor(deps: CliDeps, flags: GlobalFlags, clientInfo: ClientInfo) {
    this.#deps = deps;
    this.out = deps.out;
    this.clientInfo = clientInfo;
    this.options = resolveGlobalOptions(flags, deps.env);
    this.#deadline = this.options.timeoutMs === undefined ? undefined : Date.now() + this.options.timeoutMs;
  }

  client<S extends DescService>(service: S): Client<S> {
    const client = createClient(service, this.transport());
    // calls that frame their own messages (Content.Write) find the session through the client
    attachDirectStreams(client, this.#connection?.direct);
    return client;
  }

  transport(): Transport {
    if (this.#connection === undefined) {
      const connect = this.#deps.connect ?? createConnection;
      this.#connection = connect({
        address: this.options.address,
        namespace: this.options.namespace,
        interceptors: this.options.debug ? [debugInterceptor(this.out)] : [],
      });
    }
    return this.#connection.transport;
  }

  callOptions(): CallOptions {
    if (this.#deadline === undefined) return {};
    // at least 1 ms: a zero timeoutMs would mean "no deadline" to connect
    return { timeoutMs: Math.max(1, this.#deadline - Date.now()) };
  }

  stdin(): ByteSource {
    return this.#deps.stdin ? this.#deps.stdin() : stdinSource();
  }

  close(): void {
    this.#connection?.close();
    this.#connection = undefined;
  }
}

/** Reads the global flags from wherever commander parsed them (before or after the subcommand). */
export function globalFlagsOf(command: Command): GlobalFlags {
  return command.optsWithGlobals() as GlobalFlags;
}

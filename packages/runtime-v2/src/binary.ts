import { constants, accessSync, statSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { delimiter, dirname, isAbsolute, join, resolve } from "node:path";
import type { DeleteResponse } from "@berth/api/task/v2";
import { InvalidArgumentError, NotFoundError, UnknownError, isAlreadyExists } from "@berth/errdefs";
import { fromBinary } from "@bufbuild/protobuf";
import { BUNDLE_FILES, type Bundle } from "./bundle.js";

/**
 * The shim binary of a runtime name, as containerd names it: the last two dot-separated parts make
 * `containerd-shim-<name>-<version>` (`io.containerd.runc.v2` → `containerd-shim-runc-v2`). Empty for a name
 * with fewer than two parts.
 */
export function shimBinaryName(runtime: string): string {
  const parts = runtime.split(".");
  if (parts.length < 2) return "";
  return `containerd-shim-${parts[parts.length - 2]}-${parts[parts.length - 1]}`;
}

const isExecutable = (path: string): boolean => {
  try {
    if (!statSync(path).isFile()) return false;
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
};

/**
 * Resolves a runtime to its shim binary (containerd's resolveRuntimePath): an absolute path is used as is;
 * otherwise the binary named after the runtime is looked up next to a path-like runtime name, then on PATH,
 * then next to the daemon's own executable. InvalidArgument for a malformed name, NotFound when not installed.
 */
export function resolveShimBinary(runtime: string, options: { path?: string; selfDir?: string } = {}): string {
  if (runtime === "") throw new InvalidArgumentError("no runtime name");
  if (isAbsolute(runtime)) {
    if (!isExecutable(runtime)) throw new NotFoundError(`invalid custom binary path ${runtime}`);
    return runtime;
  }
  const name = shimBinaryName(runtime);
  if (name === "" || name.includes("/")) {
    throw new InvalidArgumentError(
      `invalid runtime name ${runtime}, correct runtime name should be either format like \`io.containerd.runc.v1\` or a full path to the binary`,
    );
  }
  const candidates = [resolve(dirname(runtime), name)];
  for (const dir of (options.path ?? process.env.PATH ?? "").split(delimiter))
    if (dir) candidates.push(join(dir, name));
  if (options.selfDir) candidates.push(join(options.selfDir, name));
  for (const c of candidates) if (isExecutable(c)) return c;
  throw new NotFoundError(`runtime ${JSON.stringify(runtime)} binary not installed ${JSON.stringify(name)}`);
}

/** How berthd launches shims: its addresses and what it passes as `-publish-binary`. */
export interface ShimLaunchConfig {
  /** The daemon's gRPC socket (`-address`). */
  readonly address: string;
  /** The daemon's ttrpc socket (`TTRPC_ADDRESS`), where shims forward events. */
  readonly ttrpcAddress: string;
  /** `-publish-binary`: a containerd-compatible `publish` command (the Go shim uses ttrpc instead). */
  readonly publishBinary: string;
  readonly debug?: boolean;
  /** Extra environment for shims. */
  readonly env?: Readonly<Record<string, string>>;
}

function shimEnv(config: ShimLaunchConfig): NodeJS.ProcessEnv {
  return { ...process.env, ...config.env, GOMAXPROCS: "2", TTRPC_ADDRESS: config.ttrpcAddress };
}

// Loaded with the first task, not at daemon start (it loads a native addon).
let spawnModule: Promise<typeof import("@berth/spawn")> | undefined;
export const spawnLib = (): Promise<typeof import("@berth/spawn")> => {
  spawnModule ??= import("@berth/spawn");
  return spawnModule;
};

const commonArgs = (config: ShimLaunchConfig, namespace: string) => [
  "-namespace",
  namespace,
  "-address",
  config.address,
  "-publish-binary",
  config.publishBinary,
];

/**
 * `<shim> -namespace NS -address A -publish-binary B -id ID start` in the bundle dir, with the runtime options
 * (a marshalled Any) on stdin: the shim forks its long-lived server, which writes `address` and `shim.pid`
 * into the bundle, and prints the address. Returns that address and records the binary in the bundle.
 * With `logFifo`, that fifo is created first (if missing). The shim starts through posix_spawn: a fork of a
 * large Node process costs ~10 ms of blocked event loop per task.
 */
export async function startShimBinary(
  binary: string,
  bundle: Bundle,
  config: ShimLaunchConfig,
  options: Uint8Array | undefined,
  signal?: AbortSignal,
  logFifo?: string,
): Promise<string> {
  const args = [...commonArgs(config, bundle.namespace), "-id", bundle.id];
  if (config.debug) args.push("-debug");
  args.push("start");
  if (logFifo !== undefined) {
    try {
      await (await spawnLib()).makeFifo(logFifo, 0o700);
    } catch (err) {
      if (!isAlreadyExists(err)) throw new UnknownError(`cannot create log fifo ${logFifo}`, { cause: err });
    }
  }
  const r = await (await spawnLib()).run(binary, args, {
    cwd: bundle.path,
    env: shimEnv(config),
    input: options && options.length > 0 ? options : new Uint8Array(0),
    ...(signal ? { signal } : {}),
  });
  if (r.code !== 0) {
    const text = Buffer.concat([r.stdout, r.stderr]).toString("utf8");
    throw new UnknownError(
      `start failed: ${text.trim()}: ${r.signal ? `signal: ${r.signal}` : `exit status ${r.code}`}`,
    );
  }
  const address = r.stdout.toString("utf8").trim();
  if (address === "") throw new UnknownError(`start failed: shim ${binary} printed no address`);
  await writeFile(join(bundle.path, BUNDLE_FILES.shimBinaryPath), binary, { mode: 0o600 });
  return address;
}

/** What `shim delete` reports about the task it cleaned up. */
export interface ShimExit {
  readonly pid: number;
  readonly exitStatus: number;
  readonly exitedAt: Date;
}

/**
 * `<shim> … -id ID -bundle B delete` (containerd's binary.Delete), run for a shim that is gone: the shim binary
 * deletes the container with its OCI runtime and prints a marshalled DeleteResponse on stdout.
 */
export async function deleteShimBinary(binary: string, bundle: Bundle, config: ShimLaunchConfig): Promise<ShimExit> {
  // The shim API's descriptors load when first needed (they are a noticeable part of berthd's start-up).
  const { DeleteResponseSchema } = await import("@berth/api/task/v2");
  const args = [...commonArgs(config, bundle.namespace), "-id", bundle.id, "-bundle", bundle.path, "delete"];
  const r = await (await spawnLib()).run(binary, args, { cwd: bundle.path, env: shimEnv(config), timeoutMs: 10_000 });
  if (r.code !== 0) {
    const why = r.signal ? `signal: ${r.signal}` : `exit status ${r.code}`;
    throw new UnknownError(`shim delete ${bundle.id}: ${r.stderr.toString("utf8").trim()}: ${why}`);
  }
  let response: DeleteResponse;
  try {
    response = fromBinary(DeleteResponseSchema, r.stdout);
  } catch (e) {
    throw new UnknownError(`shim delete ${bundle.id}: bad response`, { cause: e });
  }
  const ts = response.exitedAt;
  return {
    pid: response.pid,
    exitStatus: response.exitStatus,
    exitedAt: ts ? new Date(Number(ts.seconds) * 1000 + Math.floor(ts.nanos / 1e6)) : new Date(),
  };
}

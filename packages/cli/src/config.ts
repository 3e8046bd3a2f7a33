/** Global options and where their values come from: flag, then BERTH_*, then CONTAINERD_*, then the default. */
import { parseDuration } from "./duration.js";

export const DEFAULT_ADDRESS = "/run/berth/berth.sock";
export const DEFAULT_NAMESPACE = "default";

/** The global flags as commander parses them (all optional). */
export interface GlobalFlags {
  readonly address?: string;
  readonly namespace?: string;
  readonly timeout?: string;
  readonly json?: boolean;
  readonly debug?: boolean;
}

/** Resolved settings every command runs with. */
export interface GlobalOptions {
  /** Path of the daemon's unix socket (a `unix://` prefix is removed). */
  readonly address: string;
  readonly namespace: string;
  /** Per-command deadline in milliseconds; `undefined` means none (ctr's default `--timeout 0`). */
  readonly timeoutMs: number | undefined;
  readonly json: boolean;
  readonly debug: boolean;
}

export type Env = Readonly<Record<string, string | undefined>>;

function firstSet(...values: ReadonlyArray<string | undefined>): string | undefined {
  return values.find((v) => v !== undefined && v !== "");
}

export function resolveAddress(flag: string | undefined, env: Env): string {
  const raw = firstSet(flag, env.BERTH_ADDRESS, env.CONTAINERD_ADDRESS) ?? DEFAULT_ADDRESS;
  return raw.startsWith("unix://") ? raw.slice("unix://".length) : raw;
}

export function resolveNamespace(flag: string | undefined, env: Env): string {
  return firstSet(flag, env.BERTH_NAMESPACE, env.CONTAINERD_NAMESPACE) ?? DEFAULT_NAMESPACE;
}

export function resolveGlobalOptions(flags: GlobalFlags, env: Env): GlobalOptions {
  const timeoutMs = flags.timeout === undefined ? undefined : parseDuration(flags.timeout);
  return {
    address: resolveAddress(flags.address, env),
    namespace: resolveNamespace(flags.namespace, env),
    timeoutMs: timeoutMs === undefined || timeoutMs === 0 ? undefined : timeoutMs,
    json: flags.json === true,
    debug: flags.debug === true,
  };
}

/** Signal names and numbers as ctr parses them (`SIGTERM`, `TERM`, `15`), for `tasks kill` and forwarding. */
import { constants } from "node:os";
import { CliError } from "./errors.js";

const SIGNALS = constants.signals as Readonly<Record<string, number>>;

/** The number of a signal given as `SIGKILL`, `KILL`, `kill` or `9`. */
export function parseSignal(raw: string): number {
  if (/^\d+$/.test(raw)) {
    const n = Number(raw);
    if (n > 0 && n < 65) return n;
    throw new CliError(`invalid signal ${raw}`);
  }
  const name = raw.toUpperCase().startsWith("SIG") ? raw.toUpperCase() : `SIG${raw.toUpperCase()}`;
  const n = SIGNALS[name];
  if (n === undefined) throw new CliError(`invalid signal ${raw}`);
  return n;
}

/** The name of a signal number (`SIGTERM`), or the number itself when it has none. */
export function signalName(n: number): string {
  return Object.entries(SIGNALS).find(([, v]) => v === n)?.[0] ?? String(n);
}

/**
 * Signals `berth run` and `tasks start|attach` pass on to the container (ctr forwards all but SIGCHLD, SIGPIPE and
 * SIGURG). SIGKILL and SIGSTOP cannot be caught; SIGUSR1 is Node's inspector switch, and the timer signals
 * (SIGALRM, SIGVTALRM, SIGPROF) are left alone: V8's profiler uses SIGPROF, and a handler removed afterwards
 * would leave it at its default action, which ends the process.
 */
export const FORWARDED_SIGNALS: readonly NodeJS.Signals[] = [
  "SIGINT",
  "SIGTERM",
  "SIGHUP",
  "SIGQUIT",
  "SIGUSR2",
  "SIGWINCH",
  "SIGCONT",
  "SIGTSTP",
  "SIGTTIN",
  "SIGTTOU",
  "SIGXCPU",
  "SIGXFSZ",
];

/** Forwards the signals above to `send` until the returned function is called. */
export function forwardSignals(send: (signal: number) => void, skip: ReadonlySet<string> = new Set()): () => void {
  const handlers = new Map<NodeJS.Signals, () => void>();
  for (const sig of FORWARDED_SIGNALS) {
    if (skip.has(sig)) continue;
    const handler = () => send(SIGNALS[sig] ?? 15);
    handlers.set(sig, handler);
    process.on(sig, handler);
  }
  return () => {
    for (const [sig, handler] of handlers) process.off(sig, handler);
  };
}

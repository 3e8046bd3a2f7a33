/** Turning any failure into the one line berth prints (`berth: <message>`). */
import { ConnectError } from "@connectrpc/connect";
import { isCanceled, isDeadlineExceeded } from "@berth/errdefs";
import { fromConnectError } from "@berth/errdefs/connect";

/** An error a command raises for bad usage or a failed step, printed without further decoration. */
export class CliError extends Error {
  override readonly name = "CliError";
}

const DIAL_ERRORS = new Set(["ENOENT", "ECONNREFUSED", "EACCES", "ENOTSOCK", "ECONNRESET", "EPIPE"]);

/** Finds a Node system error from dialling the socket in an error's cause chain. */
export function dialError(err: unknown): NodeJS.ErrnoException | undefined {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) {
    const code = (e as NodeJS.ErrnoException).code;
    if (typeof code === "string" && DIAL_ERRORS.has(code)) return e as NodeJS.ErrnoException;
  }
  return undefined;
}

/**
 * Maps an error to the message berth prints. Errors from calls become typed Berth errors (`fromConnectError`),
 * so the message is the daemon's (`namespace "x": already exists`); socket failures name the address.
 */
export function errorMessage(err: unknown, address?: string): string {
  if (err instanceof CliError) return err.message;
  if (err instanceof ConnectError || isConnectErrorLike(err)) {
    const sys = dialError(err);
    if (sys && address !== undefined) {
      return `failed to dial ${JSON.stringify(address)}: ${sys.message}`;
    }
    const typed = fromConnectError(err);
    if (isDeadlineExceeded(typed)) return "context deadline exceeded";
    if (isCanceled(typed)) return "context canceled";
    return typed.message;
  }
  if (err instanceof Error) return err.message;
  return String(err);
}

function isConnectErrorLike(err: unknown): boolean {
  return err instanceof Error && err.name === "ConnectError";
}

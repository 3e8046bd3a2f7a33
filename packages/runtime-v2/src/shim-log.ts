import { constants, closeSync, openSync } from "node:fs";
import { lstat } from "node:fs/promises";
import { Socket } from "node:net";
import { join } from "node:path";
import { isAlreadyExists } from "@berth/errdefs";
import type { Logger } from "@berth/plugin";
import { spawnLib } from "./binary.js";
import { BUNDLE_FILES, type Bundle } from "./bundle.js";

/** The reading end of a shim's log fifo; `close()` lets go of it. */
export interface ShimLog {
  close(): void;
}

async function isFifo(path: string): Promise<boolean> {
  try {
    return (await lstat(path)).isFIFO();
  } catch {
    return false;
  }
}

/**
 * Creates `<bundle>/log` (a fifo) if needed and holds it open read-write and non-blocking (containerd's
 * openShimLog): the shim opens it for writing and must never block on it; each line it writes is logged at
 * debug level with the task's id and namespace.
 */
export async function openShimLog(bundle: Bundle, log: Logger): Promise<ShimLog> {
  const path = join(bundle.path, BUNDLE_FILES.log);
  // usually made already, with the shim's start (see startShimBinary)
  if (!(await isFifo(path))) {
    try {
      await (await spawnLib()).makeFifo(path, 0o700);
    } catch (err) {
      if (!isAlreadyExists(err)) throw err;
    }
  }
  const fd = openSync(path, constants.O_RDWR | constants.O_NONBLOCK);
  let socket: Socket;
  try {
    socket = new Socket({ fd, readable: true, writable: false });
  } catch (err) {
    closeSync(fd);
    throw err;
  }
  let rest = "";
  socket.setEncoding("utf8");
  socket.on("data", (chunk: string) => {
    const lines = (rest + chunk).split("\n");
    rest = lines.pop() ?? "";
    for (const line of lines)
      if (line) log.debug({ id: bundle.id, namespace: bundle.namespace, shim: line }, "shim log");
  });
  socket.on("error", () => {});
  return {
    close: () => socket.destroy(),
  };
}

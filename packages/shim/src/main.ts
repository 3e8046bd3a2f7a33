import { writeSync, closeSync } from "node:fs";
import { parseArgs } from "node:util";
import { setMallocThresholds } from "@berth/spawn";
import { ShimServer } from "./server.js";

/**
 * Entry point of the shared shim server, started by `containerd-shim-berth-v2 start` with the readiness pipe
 * as fd `--ready-fd`: "ok" is written there once the socket listens, an error message if it cannot.
 */
export async function main(argv: readonly string[] = process.argv.slice(2)): Promise<void> {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      socket: { type: "string" },
      namespace: { type: "string" },
      address: { type: "string", default: "" },
      "publish-binary": { type: "string", default: "" },
      "ready-fd": { type: "string" },
      debug: { type: "boolean", default: false },
      linger: { type: "string" },
    },
    strict: true,
  });
  const readyFd = values["ready-fd"] !== undefined ? Number(values["ready-fd"]) : undefined;
  const report = (text: string) => {
    if (readyFd === undefined) return;
    try {
      writeSync(readyFd, text);
      closeSync(readyFd);
    } catch {
      // the launcher gave up waiting
    }
  };
  try {
    if (!values.socket || !values.namespace) throw new Error("--socket and --namespace are required");
    const ttrpcAddress = process.env.TTRPC_ADDRESS || (values.address ? `${values.address}.ttrpc` : "");
    const server = new ShimServer({
      socket: values.socket,
      namespace: values.namespace,
      ttrpcAddress,
      lingerMs: Number(values.linger ?? process.env.BERTH_SHIM_LINGER_MS ?? 5000),
      onStopped: () => process.exit(0),
    });
    for (const sig of ["SIGTERM", "SIGINT"] as const) process.on(sig, () => void server.stop());
    // One server holds every container of its namespace: a bug in one request must not drop them all.
    process.on("uncaughtException", (err) => console.error("berth shim: uncaught:", err));
    process.on("unhandledRejection", (err) => console.error("berth shim: unhandled rejection:", err));
    await server.listen();
    report("ok");
    // It lives as long as its containers: freed memory goes back instead of staying at each arena's top.
    setMallocThresholds();
  } catch (err) {
    report(`error: ${(err as Error).message}`);
    process.exitCode = 1;
  }
}

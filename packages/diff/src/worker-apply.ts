// applyLayerInWorker: applyLayer on a worker thread (a small pool, reused), the layer's bytes streamed to it.
//
// Measured on the 6-layer bench image inside berthd: the apply itself costs about the same CPU anywhere, but on
// the daemon's thread every 64 MiB of short-lived chunk buffers forces a full mark-compact of the daemon's heap
// (~20 ms each), which made the unpack ~1.5× containerd's CPU. On a worker those collections run on a tiny
// heap, the daemon's event loop stays free, and reading the blob overlaps the apply.
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import { CanceledError, type ErrorKind, errorKind, errorOfKind } from "@berth/errdefs";
import type { ApplyOptions, ApplyResult } from "./apply.js";

/** Chunks in flight to the worker before the reader waits (8 MiB with content-store chunks). */
const MAX_IN_FLIGHT = 8;
const MAX_IDLE = 2;
/**
 * An idle worker is kept this long for the next layer of a pull, then ended: each holds its own heap and
 * malloc arena (~30 MB of the daemon's RSS after a large unpack, measured), which a daemon at rest should not.
 */
const IDLE_TIMEOUT_MS = 5_000;

const idle: Worker[] = [];
const idleTimers = new WeakMap<Worker, NodeJS.Timeout>();

function workerUrl(): URL {
  const local = new URL("./apply-worker.js", import.meta.url);
  if (existsSync(fileURLToPath(local))) return local;
  // bundled callers (berthd's bundle): the worker is this package's own file
  return new URL(`file://${createRequire(import.meta.url).resolve("@berth/diff/apply-worker")}`);
}

function acquire(): Worker {
  const w = idle.pop();
  if (w !== undefined) {
    clearTimeout(idleTimers.get(w));
    w.ref();
    return w;
  }
  return new Worker(workerUrl());
}

function release(w: Worker): void {
  w.removeAllListeners("message");
  w.removeAllListeners("error");
  w.removeAllListeners("exit");
  if (idle.length >= MAX_IDLE) {
    void w.terminate();
    return;
  }
  w.unref();
  idle.push(w);
  const timer = setTimeout(() => {
    const i = idle.indexOf(w);
    if (i >= 0) idle.splice(i, 1);
    void w.terminate();
  }, IDLE_TIMEOUT_MS);
  timer.unref();
  idleTimers.set(w, timer);
}

/** Workers kept for the next apply (tests). */
export function idleWorkerCount(): number {
  return idle.length;
}

/** Whether worker threads can be used here (the worker file is found). */
export function workerApplyAvailable(): boolean {
  try {
    workerUrl();
    return true;
  } catch {
    return false;
  }
}

/** The options a worker can take (no functions: the logger stays here, the signal is forwarded). */
function portable(options: ApplyOptions): ApplyOptions {
  const { log: _log, signal: _signal, ...rest } = options;
  return rest;
}

/**
 * Same contract as applyLayer: resolves with the diffID, rejects with the same error kinds. A stream is read
 * here and its chunks moved to the worker (transferred when the chunk owns its whole buffer); `{ file }` (a
 * content store's blob file) is read by the worker itself, which saves a thread hand-off per chunk.
 */
export async function applyLayerInWorker(
  root: string,
  stream: AsyncIterable<Uint8Array> | { readonly file: string },
  options: ApplyOptions = {},
): Promise<ApplyResult> {
  if (options.signal?.aborted) throw new CanceledError("apply layer", { cause: options.signal.reason });
  const worker = acquire();
  let inFlight = 0;
  let drained: (() => void) | undefined;
  let settled = false;
  let broken = false;
  const result = new Promise<ApplyResult>((resolve, reject) => {
    worker.on("message", (m: { type: string; n?: number; result?: ApplyResult; kind?: string; message?: string }) => {
      if (m.type === "ack") {
        inFlight -= m.n ?? 1;
        drained?.();
        drained = undefined;
      } else if (m.type === "done") {
        settled = true;
        resolve(m.result!);
      } else if (m.type === "error") {
        settled = true;
        reject(errorOfKind((m.kind ?? "Unknown") as ErrorKind, m.message ?? "apply layer failed", { bare: true }));
      }
      if (settled) {
        drained?.();
        drained = undefined;
      }
    });
    worker.on("error", (err) => {
      broken = true;
      settled = true;
      reject(err);
      drained?.();
    });
    worker.on("exit", () => {
      broken = true;
      if (!settled) {
        settled = true;
        reject(errorOfKind("Internal", "apply layer: worker exited"));
      }
      drained?.();
    });
  });
  result.catch(() => {});
  const file = "file" in stream ? stream.file : undefined;
  worker.postMessage({ type: "start", root, options: portable(options), ...(file !== undefined ? { file } : {}) });

  const onAbort = () => worker.postMessage({ type: "abort", kind: "Canceled", message: "apply layer: canceled" });
  options.signal?.addEventListener("abort", onAbort, { once: true });
  let readError: unknown;
  try {
    for await (const chunk of "file" in stream ? [] : stream) {
      if (settled) break;
      const owns = chunk.byteOffset === 0 && chunk.byteLength === chunk.buffer.byteLength;
      const data = owns && chunk.buffer instanceof ArrayBuffer ? chunk : new Uint8Array(chunk);
      worker.postMessage({ type: "chunk", data }, [data.buffer as ArrayBuffer]);
      inFlight++;
      while (inFlight >= MAX_IN_FLIGHT && !settled) {
        await new Promise<void>((resolve) => {
          drained = resolve;
        });
      }
    }
    if (!settled && file === undefined) worker.postMessage({ type: "end" });
  } catch (err) {
    readError = err;
    if (!settled)
      worker.postMessage({ type: "abort", kind: errorKind(err), message: String((err as Error)?.message ?? err) });
  }
  try {
    const r = await result;
    if (readError !== undefined) throw readError;
    return r;
  } catch (err) {
    throw readError ?? err;
  } finally {
    options.signal?.removeEventListener("abort", onAbort);
    if (broken) void worker.terminate();
    else release(worker);
  }
}

// Worker-thread side of applyLayerInWorker (see worker-apply.ts): receives a layer's (compressed) bytes over its
// port and runs applyLayer here, so decompression, hashing, tar parsing and file writes happen off the caller's
// event loop and their allocations in this isolate's small heap instead of a daemon's large one.
import { closeSync, openSync, readSync } from "node:fs";
import { parentPort } from "node:worker_threads";
import { errorKind } from "@berth/errdefs";
import { type ApplyOptions, applyLayer } from "./apply.js";

interface StartMessage {
  readonly type: "start";
  readonly root: string;
  readonly options: ApplyOptions;
  /** Read the layer from this file here instead of receiving chunks. */
  readonly file?: string;
}
type InMessage =
  | StartMessage
  | { readonly type: "chunk"; readonly data: Uint8Array }
  | { readonly type: "end" }
  | { readonly type: "abort"; readonly message: string; readonly kind: string };

const port = parentPort;
if (port === null) throw new Error("apply-worker must run in a worker thread");

/** Chunks consumed per acknowledgement (worker-apply.ts keeps twice as many in flight). */
const ACK_EVERY = 4;
let queue: InMessage[] = [];
let unacked = 0;
let wake: (() => void) | undefined;

port.on("message", (m: InMessage) => {
  if (m.type === "start") {
    void run(m);
    return;
  }
  queue.push(m);
  wake?.();
  wake = undefined;
});

class RemoteAbort extends Error {
  constructor(
    message: string,
    readonly remoteKind: string,
  ) {
    super(message);
  }
}

async function* chunks(): AsyncGenerator<Uint8Array> {
  for (;;) {
    const m = queue.shift();
    if (m === undefined) {
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
      continue;
    }
    if (m.type === "chunk") {
      // acknowledged in batches: the sender keeps a few MiB in flight, and every message wakes its loop
      if (++unacked >= ACK_EVERY) {
        port?.postMessage({ type: "ack", n: unacked });
        unacked = 0;
      }
      yield m.data;
    } else if (m.type === "end") return;
    else if (m.type === "abort") throw new RemoteAbort(m.message, m.kind);
  }
}

/** Read size for a layer file: large reads from the page cache, no thread hand-off per chunk. */
const FILE_CHUNK = 4 << 20;

async function* fileChunks(file: string): AsyncGenerator<Uint8Array> {
  const fd = openSync(file, "r");
  try {
    for (;;) {
      const buf = Buffer.allocUnsafeSlow(FILE_CHUNK);
      const n = readSync(fd, buf, 0, FILE_CHUNK, null);
      if (n === 0) return;
      yield n === FILE_CHUNK ? buf : buf.subarray(0, n);
    }
  } finally {
    closeSync(fd);
  }
}

async function run(m: StartMessage): Promise<void> {
  queue = [];
  unacked = 0;
  try {
    const result = await applyLayer(m.root, m.file === undefined ? chunks() : fileChunks(m.file), m.options);
    port?.postMessage({ type: "done", result });
  } catch (err) {
    const e = err as Error & { code?: string; remoteKind?: string };
    port?.postMessage({
      type: "error",
      kind: e instanceof RemoteAbort ? e.remoteKind : errorKind(err),
      message: e?.message ?? String(err),
      remote: e instanceof RemoteAbort,
    });
  }
}

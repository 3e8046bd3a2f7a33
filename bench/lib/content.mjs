// Helpers for the content scenarios: random test blobs (made once per run), removing a blob from a daemon
// until its file is really gone (so the next ingest writes again), and the berth CLI.
import { createHash, randomFillSync } from "node:crypto";
import { closeSync, existsSync, openSync, rmSync, writeSync } from "node:fs";
import { join } from "node:path";
import { REPO_ROOT } from "./berthd.mjs";
import { makeTempDir } from "./daemon.mjs";
import { onCleanup, run, runOk, waitFor } from "./proc.mjs";

export const MiB = 1 << 20;
export const GiB = 1 << 30;
export const BERTH_CLI = join(REPO_ROOT, "packages/cli/bin/berth.js");

const blobs = new Map();

/**
 * A file of `size` random bytes in the bench temp dir, written once per run and per size (later calls get the
 * same file) and removed when the run ends. Resolves { path, size, digest }.
 */
export function randomBlob(size) {
  let p = blobs.get(size);
  if (p === undefined) {
    p = Promise.resolve().then(() => {
      const dir = makeTempDir("data");
      onCleanup(() => rmSync(dir, { recursive: true, force: true }));
      const path = join(dir, `random-${size}.bin`);
      const fd = openSync(path, "w");
      const hash = createHash("sha256");
      const buf = Buffer.allocUnsafe(16 * MiB);
      try {
        for (let left = size; left > 0; ) {
          const chunk = buf.subarray(0, Math.min(left, buf.length));
          randomFillSync(chunk);
          hash.update(chunk);
          for (let off = 0; off < chunk.length; ) off += writeSync(fd, chunk, off);
          left -= chunk.length;
        }
      } finally {
        closeSync(fd);
      }
      return { path, size, digest: `sha256:${hash.digest("hex")}` };
    });
    blobs.set(size, p);
  }
  return p;
}

/** Where a daemon's local content store keeps a blob (both use containerd's layout under their root). */
export function blobFile(d, digest) {
  const [alg, hex] = digest.split(":");
  return join(d.dir, "root", "io.containerd.content.v1.content", "blobs", alg, hex);
}

/**
 * `ctr content rm`, then wait until garbage collection has removed the file (both daemons collect shortly after
 * a delete), so that the next ingest of the same bytes really writes them.
 */
export async function removeBlob(d, digest, { timeoutMs = 60_000 } = {}) {
  const file = blobFile(d, digest);
  if (!existsSync(file)) return;
  const r = await run("ctr", ["-a", d.sock, "content", "rm", digest], { timeoutMs: 30_000 });
  if (r.code !== 0 && !/not found/i.test(r.stderr)) {
    throw new Error(`ctr content rm ${digest} (${d.kind}) exited ${r.code}: ${r.stderr.trim()}`);
  }
  await waitFor(() => !existsSync(file), { timeoutMs, intervalMs: 20, what: `${d.kind} to collect ${digest}` });
}

/** Flushes dirty pages (untimed), so a sample does not pay for the writeback of the previous one. */
export async function syncDisks() {
  await runOk("sync", [], { timeoutMs: 120_000 });
}

/** Runs a command that must succeed; resolves its wall time in ms. */
export async function timed(cmd, args, opts) {
  const r = await runOk(cmd, args, { timeoutMs: 600_000, ...opts });
  return r.ms;
}

const mibPerS = (bytes, ms) => bytes / MiB / (ms / 1000);
export { mibPerS };

// The floor under `berth content ingest` on this machine: the least any Node client and Node daemon can do to
// move a file into a content store, with no protocol at all. A Node client pipes the file (its standard input)
// into a unix socket; a Node server does what berthd's writer does with the bytes: sha256, positional writes
// with one in flight, a background fdatasync every 32 MiB, fsync and rename at the end, and answers the digest.
// No gRPC, no HTTP/2, no metadata. Timed like the CLI, from spawn to exit of the client.
//
//   node ingest-floor.mjs serve <socket> <dir>     (the server; the bench starts it once per run)
//   node ingest-floor.mjs send <socket> < file     (the client; prints sha256:<hex>)
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { open, rename, rm } from "node:fs/promises";
import { connect, createServer } from "node:net";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { launcherNodeFlags } from "./berthd.mjs";
import { makeTempDir, serviceEnv } from "./daemon.mjs";
import { onCleanup, stopPid, waitFor } from "./proc.mjs";

const BACKGROUND_SYNC_BYTES = 32 << 20;

async function serve(sock, dir) {
  await rm(sock, { force: true });
  let seq = 0;
  // half-open: the client ends its side after the last byte and still reads the digest
  const server = createServer({ allowHalfOpen: true }, async (conn) => {
    const n = seq++;
    const data = join(dir, `ingest-${n}`);
    const fh = await open(data, "w");
    const hash = createHash("sha256");
    let offset = 0;
    let unsynced = 0;
    let syncing;
    let inflight = Promise.resolve();
    let failed;
    conn.on("data", (chunk) => {
      // the write goes first, so the hash runs while the kernel copies (as in berthd's writer)
      const write = fh.write(chunk, 0, chunk.length, offset);
      hash.update(chunk);
      offset += chunk.length;
      unsynced += chunk.length;
      if (unsynced >= BACKGROUND_SYNC_BYTES && syncing === undefined) {
        unsynced = 0;
        syncing = fh.datasync().finally(() => {
          syncing = undefined;
        });
      }
      conn.pause();
      inflight = write.then(
        () => conn.resume(),
        (err) => {
          failed ??= err;
          conn.destroy(err);
        },
      );
    });
    conn.on("end", async () => {
      try {
        await inflight;
        if (failed) throw failed;
        await syncing;
        await fh.sync();
        await fh.close();
        const digest = `sha256:${hash.digest("hex")}`;
        const blob = join(dir, `blob-${n}`);
        await rename(data, blob);
        await rm(blob); // the next sample writes again, as the bench's blob removal makes the daemons do
        conn.end(`${digest}\n`);
      } catch (err) {
        conn.destroy(err);
      }
    });
  });
  server.listen(sock, () => process.stdout.write("ready\n"));
}

function send(sock) {
  const conn = connect(sock);
  let reply = "";
  conn.setEncoding("utf8").on("data", (d) => {
    reply += d;
  });
  conn.on("end", () => process.stdout.write(reply));
  conn.on("error", (err) => {
    console.error(`ingest-floor: ${err.message}`);
    process.exitCode = 1;
  });
  // the same read size as the berth CLI's reads of a regular file
  createReadStream("", { fd: 0, highWaterMark: 1 << 20 }).pipe(conn);
}

/**
 * Starts the floor server (once per run; stopped with the run's cleanups) with berthd's node flags and
 * environment, writing under the bench temp dir like the daemons. Resolves { sock, script }.
 */
export async function startIngestFloor() {
  const dir = makeTempDir("floor");
  const sock = join(dir, "floor.sock");
  const script = fileURLToPath(import.meta.url);
  const child = spawn(process.execPath, [...launcherNodeFlags(), script, "serve", sock, dir], {
    stdio: ["ignore", "pipe", "inherit"],
    env: serviceEnv(),
  });
  onCleanup(async () => {
    await stopPid(child.pid, { child, graceMs: 2000 });
    await rm(dir, { recursive: true, force: true });
  });
  let out = "";
  child.stdout.setEncoding("utf8").on("data", (d) => {
    out += d;
  });
  await waitFor(() => out.includes("ready\n"), {
    timeoutMs: 10_000,
    intervalMs: 10,
    what: "ingest floor server",
    abort: () => (child.exitCode !== null ? `ingest floor server exited ${child.exitCode}` : undefined),
  });
  return { sock, script };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [mode, sock, dir] = process.argv.slice(2);
  if (mode === "serve" && sock && dir) await serve(sock, dir);
  else if (mode === "send" && sock) send(sock);
  else {
    console.error("usage: ingest-floor.mjs serve <socket> <dir> | send <socket> < file");
    process.exit(2);
  }
}

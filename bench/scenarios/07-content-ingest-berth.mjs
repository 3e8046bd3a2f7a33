// `berth content ingest ref < 1 GiB file` (our CLI, packages/cli): the whole node process (start-up included),
// reading a regular file on standard input, up to the commit. Run against both daemons for a ratio; the
// issue's target is absolute: ≥ 500 MiB/s into berthd. The blob is removed and collected before every sample.
//
// After each berthd sample, the same file also goes through the ingest floor (lib/ingest-floor.mjs): a bare
// Node client and server over a unix socket doing the hash, writes and syncs with no protocol. It shows what
// this machine allows any Node client and daemon, next to what berth does in the same run.
import { BERTH_CLI, GiB, mibPerS, randomBlob, removeBlob, syncDisks, timed } from "../lib/content.mjs";
import { startIngestFloor } from "../lib/ingest-floor.mjs";
import { runOk } from "../lib/proc.mjs";

let seq = 0;
let floor;

/** One 1 GiB pass through the floor; checks it hashed what the daemons would. Resolves its wall time in ms. */
async function floorSample(blob) {
  floor ??= startIngestFloor();
  const { sock, script } = await floor;
  await syncDisks();
  const r = await runOk(process.execPath, [script, "send", sock], { stdinFile: blob.path, timeoutMs: 600_000 });
  if (r.stdout.trim() !== blob.digest) throw new Error(`ingest floor answered ${r.stdout.trim()}, not ${blob.digest}`);
  return r.ms;
}

export default {
  name: "content-ingest-berth",
  title: "berth content ingest, 1 GiB",
  repeats: 3,
  warmup: 1,
  metrics: [
    {
      key: "mib_per_s",
      label: "`berth content ingest` 1 GiB throughput",
      unit: "MiB/s",
      better: "higher",
      target: { berth: { min: 500 } },
    },
    { key: "ingest_ms", label: "`berth content ingest` 1 GiB", unit: "ms", better: "lower" },
    {
      key: "floor_mib_per_s",
      label: "floor: bare Node pipe, sha256, write, fsync (no gRPC)",
      unit: "MiB/s",
      better: "higher",
    },
  ],
  async sample(target) {
    const [d, blob] = await Promise.all([target.shared(), randomBlob(GiB)]);
    await removeBlob(d, blob.digest);
    await syncDisks();
    const ms = await timed(
      process.execPath,
      [BERTH_CLI, "-a", d.sock, "content", "ingest", "--no-progress", `bench-ingest-berth-${process.pid}-${seq++}`],
      { stdinFile: blob.path, discardStdout: true },
    );
    const floorMs = target.kind === "berth" ? await floorSample(blob) : Number.NaN;
    return { ingest_ms: ms, mib_per_s: mibPerS(blob.size, ms), floor_mib_per_s: mibPerS(blob.size, floorMs) };
  },
};

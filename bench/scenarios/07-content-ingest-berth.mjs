// `berth content ingest ref < 1 GiB file` (our CLI, packages/cli): the whole node process (start-up included),
// reading a regular file on standard input, up to the commit. Run against both daemons for a ratio; the
// issue's target is absolute: ≥ 500 MiB/s into berthd. The blob is removed and collected before every sample.
import { BERTH_CLI, GiB, mibPerS, randomBlob, removeBlob, syncDisks, timed } from "../lib/content.mjs";

let seq = 0;

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
    return { ingest_ms: ms, mib_per_s: mibPerS(blob.size, ms) };
  },
};

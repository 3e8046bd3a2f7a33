// `ctr content ingest --expected-digest D --expected-size N ref < 1 GiB file`: the whole ctr process, reading a
// regular file on standard input and streaming it through Content.Write (1 MiB WRITEs, each waiting for its
// answer), up to the commit (fsync and rename). The blob is removed and collected before every sample.
import { GiB, mibPerS, randomBlob, removeBlob, syncDisks, timed } from "../lib/content.mjs";

let seq = 0;

export default {
  name: "content-ingest-ctr",
  title: "ctr content ingest, 1 GiB",
  repeats: 3,
  warmup: 1,
  metrics: [
    { key: "ingest_ms", label: "`ctr content ingest` 1 GiB", unit: "ms", better: "lower", target: { max: 1 } },
    { key: "mib_per_s", label: "`ctr content ingest` throughput", unit: "MiB/s", better: "higher" },
  ],
  async sample(target) {
    const [d, blob] = await Promise.all([target.shared(), randomBlob(GiB)]);
    await removeBlob(d, blob.digest);
    await syncDisks();
    const ms = await timed(
      "ctr",
      [
        "-a",
        d.sock,
        "content",
        "ingest",
        "--expected-digest",
        blob.digest,
        "--expected-size",
        String(blob.size),
        `bench-ingest-ctr-${process.pid}-${seq++}`,
      ],
      { stdinFile: blob.path, discardStdout: true },
    );
    return { ingest_ms: ms, mib_per_s: mibPerS(blob.size, ms) };
  },
};

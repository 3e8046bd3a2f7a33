// `ctr content get D > /dev/null` of a 100 MiB blob: the whole ctr process. ctr reads through the proxy
// ReaderAt, one Content.Read call per 32 KiB (io.Copy's buffer), so this measures per-call stream cost as much
// as bytes. Timed by hyperfine (-N, output to /dev/null), median of 5 runs per sample. The blob is ingested
// once per daemon and labelled as a GC root.
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { blobFile, MiB, mibPerS, randomBlob } from "../lib/content.mjs";
import { runOk } from "../lib/proc.mjs";

const SIZE = 100 * MiB;

/**
 * Ingests the blob unless the daemon has it, and roots it (`containerd.io/gc.root`), or the next garbage
 * collection would remove it (ctr's ingest lease ends with the command). Checked before every sample.
 */
async function ensureBlob(d, blob) {
  if (existsSync(blobFile(d, blob.digest))) return;
  await runOk(
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
      `bench-get-${process.pid}`,
    ],
    { stdinFile: blob.path, discardStdout: true, timeoutMs: 300_000 },
  );
  await runOk("ctr", ["-a", d.sock, "content", "label", blob.digest, "containerd.io/gc.root=bench"], {
    timeoutMs: 30_000,
  });
}

export default {
  name: "content-get-ctr",
  title: "ctr content get, 100 MiB",
  repeats: 3,
  warmup: 1,
  metrics: [
    { key: "get_ms", label: "`ctr content get` 100 MiB (median)", unit: "ms", better: "lower", target: { max: 1.5 } },
    { key: "mib_per_s", label: "`ctr content get` throughput", unit: "MiB/s", better: "higher" },
  ],
  async sample(target) {
    const [d, blob] = await Promise.all([target.shared(), randomBlob(SIZE)]);
    await ensureBlob(d, blob);
    const out = join(d.dir, `hyperfine-get-${process.pid}.json`);
    try {
      // -N splits the command line on whitespace; the temp-dir socket path has none.
      await runOk(
        "hyperfine",
        [
          "-N",
          "--style",
          "none",
          "--warmup",
          "1",
          "--runs",
          "5",
          "--export-json",
          out,
          `ctr -a ${d.sock} content get ${blob.digest}`,
        ],
        { timeoutMs: 600_000 },
      );
      const ms = JSON.parse(readFileSync(out, "utf8")).results[0].median * 1000;
      return { get_ms: ms, mib_per_s: mibPerS(SIZE, ms) };
    } finally {
      rmSync(out, { force: true });
    }
  },
};

// `ctr -a SOCK version` round trip: the whole ctr process (start, dial, one Version RPC, exit), timed by
// hyperfine without a shell (-N). ctr runs on the host; the socket lives in the daemon's temp dir.
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { runOk } from "../lib/proc.mjs";

export default {
  name: "ctr-version",
  title: "ctr version round trip",
  repeats: 5,
  warmup: 1,
  metrics: [
    { key: "round_trip_ms", label: "`ctr version` (median)", unit: "ms", better: "lower", target: { max: 1.3 } },
  ],
  async sample(target) {
    const d = await target.shared();
    const out = join(d.dir, `hyperfine-${process.pid}.json`);
    try {
      // -N splits the command line on whitespace; the temp-dir socket path has none.
      await runOk(
        "hyperfine",
        ["-N", "--style", "none", "--warmup", "3", "--runs", "30", "--export-json", out, `ctr -a ${d.sock} version`],
        { timeoutMs: 300_000 },
      );
      const res = JSON.parse(readFileSync(out, "utf8")).results[0];
      return { round_trip_ms: res.median * 1000 };
    } finally {
      rmSync(out, { force: true });
    }
  },
};

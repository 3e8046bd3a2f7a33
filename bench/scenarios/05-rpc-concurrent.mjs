// 64 unary Version.Version calls in flight on one connection for 3 s: throughput.
// Target derived from "per-call server time ≤ 2×": throughput ≥ 0.5× containerd's.
import { rpcbench } from "../lib/rpcbench.mjs";

export default {
  name: "rpc-concurrent",
  title: "64 in flight, unary RPCs",
  repeats: 3,
  warmup: 1,
  metrics: [
    {
      key: "calls_per_s",
      label: "throughput",
      unit: "calls/s",
      better: "higher",
      target: { min: 0.5, note: "derived" },
    },
    { key: "per_call_us", label: "per call at 64 in flight (median)", unit: "µs", better: "lower" },
  ],
  async sample(target) {
    const d = await target.shared();
    const r = await rpcbench(d.sock, { c: 64, durationMs: 3000 });
    return { calls_per_s: r.calls_per_s, per_call_us: r.per_call_us_median };
  },
};

// 10k sequential unary Version.Version calls over one connection (Go gRPC client, raw codec).
import { rpcbench } from "../lib/rpcbench.mjs";

export default {
  name: "rpc-sequential",
  title: "10k sequential unary RPCs",
  repeats: 3,
  warmup: 1,
  metrics: [
    { key: "per_call_us", label: "per call (median)", unit: "µs", better: "lower", target: { max: 2 } },
    { key: "p99_us", label: "per call p99", unit: "µs", better: "lower" },
  ],
  async sample(target) {
    const d = await target.shared();
    const r = await rpcbench(d.sock, { n: 10_000, c: 1 });
    return { per_call_us: r.per_call_us_median, p99_us: r.p99_us };
  },
};

// Idle memory: a fresh daemon, a few RPCs (ctr version ×3, Version.Version ×50 on raw HTTP/2), a short
// settle, then VmRSS (/proc/<pid>/status) and Pss (/proc/<pid>/smaps_rollup), summed over the daemon's
// process tree (a daemon that forks helpers pays for them).
import { setTimeout as sleep } from "node:timers/promises";
import { connect, unary, VERSION_METHOD } from "../lib/grpc.mjs";
import { memoryOf, processTree, runOk } from "../lib/proc.mjs";

export default {
  name: "idle-memory",
  title: "idle daemon memory",
  repeats: 3,
  warmup: 0,
  metrics: [
    { key: "rss_mb", label: "idle RSS", unit: "MB", better: "lower", target: { max: 2 } },
    { key: "pss_mb", label: "idle Pss", unit: "MB", better: "lower" },
  ],
  async sample(target, ctx) {
    const d = await target.start();
    try {
      for (let i = 0; i < 3; i++) await runOk("ctr", ["-a", d.sock, "version"], { timeoutMs: 30_000 });
      const session = await connect(d.sock);
      try {
        for (let i = 0; i < 50; i++) await unary(session, VERSION_METHOD);
      } finally {
        session.destroy();
      }
      await sleep(ctx.settleMs ?? 2000);
      let rss = 0;
      let pss = 0;
      for (const pid of processTree(d.pid)) {
        const m = memoryOf(pid);
        rss += m.rssKb;
        pss += m.pssKb;
      }
      return { rss_mb: rss / 1024, pss_mb: pss / 1024 };
    } finally {
      await d.stop();
    }
  },
};

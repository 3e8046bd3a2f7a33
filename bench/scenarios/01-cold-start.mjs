// Cold start: exec of the daemon → socket exists → first successful Version.Version (raw gRPC probe).
// Every sample is a fresh daemon with fresh dirs.
export default {
  name: "cold-start",
  title: "cold start (exec → first RPC)",
  repeats: 10,
  warmup: 1,
  metrics: [
    { key: "first_rpc_ms", label: "launch → first RPC", unit: "ms", better: "lower", target: { max: 3 } },
    { key: "socket_ms", label: "launch → socket exists", unit: "ms", better: "lower" },
  ],
  async sample(target) {
    const d = await target.start();
    try {
      return { first_rpc_ms: d.timing.firstRpcMs, socket_ms: d.timing.socketMs };
    } finally {
      await d.stop();
    }
  },
};

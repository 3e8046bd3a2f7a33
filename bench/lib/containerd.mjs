// A private real containerd (Debian's /usr/bin/containerd 1.6) for side-by-side runs.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { launchDaemon, makeTempDir } from "./daemon.mjs";
import { runOk } from "./proc.mjs";

export const CONTAINERD = process.env.BENCH_CONTAINERD || "/usr/bin/containerd";

/** config.toml (version 2) keeping every path inside dir; CRI disabled. */
export function containerdConfig(dir, { logLevel = "info" } = {}) {
  const sock = join(dir, "containerd.sock");
  return `version = 2
root = "${join(dir, "root")}"
state = "${join(dir, "state")}"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
oom_score = 0

[grpc]
  address = "${sock}"

[ttrpc]
  address = "${sock}.ttrpc"

[debug]
  level = "${logLevel}"

[plugins."io.containerd.internal.v1.opt"]
  path = "${join(dir, "opt")}"
`;
}

/**
 * Start a fresh containerd with its own temp dir. Resolves once Version.Version answers.
 * Handle: { kind: "containerd", pid, sock, dir, timing, exec(cmd, args), ctr(args), stop() }.
 */
export async function startContainerd({ logLevel, startTimeoutMs } = {}) {
  const dir = makeTempDir("containerd");
  for (const d of ["root", "state", "opt"]) mkdirSync(join(dir, d), { recursive: true });
  const config = join(dir, "config.toml");
  writeFileSync(config, containerdConfig(dir, { logLevel }));
  const d = await launchDaemon({
    kind: "containerd",
    dir,
    argv: [CONTAINERD, "--config", config],
    sock: join(dir, "containerd.sock"),
    stateDir: join(dir, "state"),
    logFile: join(dir, "containerd.log"),
    startTimeoutMs,
  });
  d.ctr = (args, opts) => d.exec("ctr", ["-a", d.sock, ...args], opts);
  return d;
}

export async function containerdVersion() {
  const r = await runOk(CONTAINERD, ["--version"], { timeoutMs: 10_000 });
  return r.stdout.trim();
}

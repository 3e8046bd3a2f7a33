// berthd, the daemon under test, started the same way as the comparison containerd.
import { existsSync, mkdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { launchDaemon, makeTempDir } from "./daemon.mjs";

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const BERTHD_BIN = join(REPO_ROOT, "apps/daemon/bin/berthd.js");
export const BERTHD_DIST = join(REPO_ROOT, "apps/daemon/dist/bin/berthd.js");

export class BerthdMissingError extends Error {}

/** Throws a clear error unless berthd is built. */
export function assertBerthdBuilt() {
  if (!existsSync(BERTHD_BIN) || !existsSync(BERTHD_DIST)) {
    throw new BerthdMissingError(
      `berthd is not built: ${existsSync(BERTHD_BIN) ? BERTHD_DIST : BERTHD_BIN} does not exist.\n` +
        `Build it with: cd ${REPO_ROOT} && pnpm turbo run build --filter @berth/daemon\n` +
        `(or run containerd alone: node bench/run.mjs --daemons containerd)`,
    );
  }
}

/**
 * Start a fresh berthd with its own temp dir. Resolves once Version.Version answers.
 * Extra flags: BENCH_BERTHD_ARGS (space-separated) or opts.extraArgs.
 */
export async function startBerthd({ logLevel, extraArgs = [], startTimeoutMs } = {}) {
  assertBerthdBuilt();
  const dir = makeTempDir("berthd");
  for (const d of ["root", "state"]) mkdirSync(join(dir, d), { recursive: true });
  const sock = join(dir, "berthd.sock");
  const envArgs = (process.env.BENCH_BERTHD_ARGS ?? "").split(/\s+/).filter(Boolean);
  const argv = [
    process.execPath,
    BERTHD_BIN,
    "--root",
    join(dir, "root"),
    "--state",
    join(dir, "state"),
    "--address",
    sock,
    ...(logLevel ? ["--log-level", logLevel] : []),
    ...envArgs,
    ...extraArgs,
  ];
  const d = await launchDaemon({
    kind: "berth",
    dir,
    argv,
    sock,
    stateDir: join(dir, "state"),
    logFile: join(dir, "berthd.log"),
    startTimeoutMs,
  });
  d.ctr = (args, opts) => d.exec("ctr", ["-a", d.sock, ...args], opts);
  return d;
}

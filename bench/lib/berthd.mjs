// berthd, the daemon under test, started the same way as the comparison containerd.
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { launchDaemon, makeTempDir } from "./daemon.mjs";

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const BERTHD_BIN = join(REPO_ROOT, "apps/daemon/bin/berthd.js");
export const BERTHD_DIST = join(REPO_ROOT, "apps/daemon/dist/bin/berthd.js");

export class BerthdMissingError extends Error {}

/**
 * The node flags berthd's launcher declares on its `#!/usr/bin/env -S node …` line: npm and pnpm bin links (and
 * the kernel, when the file is run) start it with them, so the bench does too, with the bench's own node.
 */
export function launcherNodeFlags(bin = BERTHD_BIN) {
  const first = readFileSync(bin, "utf8").split("\n", 1)[0] ?? "";
  const m = /^#!\s*\/usr\/bin\/env\s+(?:-S\s+)?node\s+(.*)$/.exec(first);
  return m ? m[1].trim().split(/\s+/).filter(Boolean) : [];
}

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
    ...launcherNodeFlags(),
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

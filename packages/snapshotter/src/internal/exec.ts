export interface RunResult {
  readonly stdout: string;
  readonly stderr: string;
}

export class CommandError extends Error {
  constructor(
    readonly command: string,
    readonly exitCode: number | null,
    readonly stderr: string,
    cause: unknown,
  ) {
    super(`${command}: ${stderr.trim() || (cause as Error)?.message || "failed"}`, { cause });
    this.name = "CommandError";
  }
}

/**
 * Runs a program without a shell; rejects with its stderr when it fails. Through @berth/spawn (posix_spawn):
 * mount and umount run from inside berthd for every layer applied, where a fork of the daemon costs ~10 ms.
 * Loaded on the first call, not at start-up.
 */
export async function run(file: string, args: readonly string[], options: { cwd?: string } = {}): Promise<RunResult> {
  const command = [file, ...args].join(" ");
  const { run: spawnRun } = await import("@berth/spawn");
  let r: Awaited<ReturnType<typeof spawnRun>>;
  try {
    r = await spawnRun(file, args, options.cwd === undefined ? {} : { cwd: options.cwd });
  } catch (err) {
    throw new CommandError(command, null, "", err);
  }
  const stdout = r.stdout.toString("utf8");
  const stderr = r.stderr.toString("utf8");
  if (r.code !== 0) {
    const why = r.signal ? `killed by ${r.signal}` : `exit status ${r.code}`;
    throw new CommandError(command, r.code, stderr, new Error(why));
  }
  return { stdout, stderr };
}

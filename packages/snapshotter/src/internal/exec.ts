import { execFile } from "node:child_process";

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

/** Runs a program without a shell; rejects with its stderr when it fails. */
export function run(file: string, args: readonly string[], options: { cwd?: string } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { cwd: options.cwd, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (err) {
        const code = typeof (err as { code?: unknown }).code === "number" ? (err as { code: number }).code : null;
        reject(new CommandError([file, ...args].join(" "), code, String(stderr), err));
        return;
      }
      resolve({ stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

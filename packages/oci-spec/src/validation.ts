import { InvalidArgumentError } from "@berth/errdefs";

/** One problem found by a validator, located by a JSONPath-like path (`$.layers[1].digest`). */
export interface Problem {
  readonly path: string;
  readonly message: string;
}

/** The outcome of a validator: `ok` is true exactly when `problems` is empty. */
export interface ValidationResult {
  readonly ok: boolean;
  readonly problems: readonly Problem[];
}

/** Formats problems one per entry: `$.layers[1].digest: invalid digest "x"`. */
export function formatProblems(problems: readonly Problem[]): string {
  return problems.map((p) => `${p.path}: ${p.message}`).join("; ");
}

/**
 * Thrown by the `assertValid…` functions. It is an InvalidArgument error (`isInvalidArgument(err)` holds)
 * and carries every problem found.
 */
export class ValidationError extends InvalidArgumentError {
  readonly subject: string;
  readonly problems: readonly Problem[];

  constructor(subject: string, problems: readonly Problem[]) {
    const n = problems.length;
    super(`invalid ${subject} (${n} ${n === 1 ? "problem" : "problems"}: ${formatProblems(problems)})`);
    this.name = "ValidationError";
    this.subject = subject;
    this.problems = problems;
  }
}

import { InvalidArgumentError, goQuote } from "@berth/errdefs";
import { isValidIdentifier, validateIdentifier } from "./identifiers.js";

/**
 * Checks an event topic as containerd's exchange does: it starts with `/` and every `/`-separated component
 * is a valid identifier (`/tasks/exit`, `/images/create`). Throws InvalidArgumentError
 * `envelope topic "<topic>": <reason>` otherwise.
 */
export function validateTopic(topic: string): void {
  const fail = (reason: string, cause?: unknown): never => {
    throw new InvalidArgumentError(`envelope topic ${goQuote(topic)}: ${reason}`, { cause });
  };
  if (topic === "") fail("must not be empty");
  if (!topic.startsWith("/")) fail("must start with '/'");
  if (topic.length === 1) fail("must have at least one component");
  for (const component of topic.slice(1).split("/")) {
    if (isValidIdentifier(component)) continue;
    try {
      validateIdentifier(component);
    } catch (err) {
      fail(`failed validation on component ${goQuote(component)}: ${stripSuffix((err as Error).message)}`, err);
    }
  }
}

function stripSuffix(message: string): string {
  const suffix = ": invalid argument";
  return message.endsWith(suffix) ? message.slice(0, -suffix.length) : message;
}

/**
 * `berth images fetch` (ctr content fetch / images pull --no-unpack): the pull without the unpack — the
 * image's content is fetched into the content store under a lease and the image is registered.
 */
import { Command, Option } from "commander";
import type { RunCommand } from "../../program.js";
import { type PullFlags, addRegistryOptions, pullImage } from "./pull.js";

export function fetchCommand(run: RunCommand): Command {
  return addRegistryOptions(
    new Command("fetch")
      .description("fetch an image's content from a registry and register the image, without unpacking")
      .argument("<ref>", "image reference"),
  )
    .addOption(
      new Option("--platform <platform>", "fetch content for this platform (repeatable; default: the host's)")
        .argParser((v: string, prev: string[]) => [...prev, v])
        .default([]),
    )
    .option("--all-platforms", "fetch content for all platforms")
    .option("--max-concurrent-downloads <n>", "blobs downloaded at once", "3")
    .option("--no-progress", "never show progress")
    .action(async (ref: string, opts: PullFlags, command: Command) =>
      run(command, async (ctx) => {
        await pullImage(ctx, ref, opts);
      }),
    );
}

/** `berth events [filters…]`: follow the daemon's event stream (ctr: Events.Subscribe(filters = args)). */
import { Command } from "commander";
import type { RunCommand } from "../../program.js";

export function eventsCommand(run: RunCommand): Command {
  return new Command("events")
    .alias("event")
    .description("display events from the daemon (until interrupted)")
    .argument("[filters...]", 'filters, e.g. topic=="/tasks/exit" or namespace==default')
    .action(async (filters: string[], _opts: unknown, command: Command) =>
      run(command, async (ctx) => {
        // loaded here: building the registry of every API file is the costliest import of the CLI
        const [{ Events }, { apiRegistry }, { formatEventJson, formatEventLine }] = await Promise.all([
          import("@berth/api/services/events/v1"),
          import("@berth/api/registry"),
          import("./format.js"),
        ]);
        const stream = ctx.client(Events).subscribe({ filters }, ctx.callOptions());
        const format = ctx.options.json ? formatEventJson : formatEventLine;
        for await (const envelope of stream) ctx.out.stdout(format(envelope, apiRegistry));
      }),
    );
}

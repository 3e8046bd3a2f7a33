/**
 * A commander Command whose options end at its first operand, as with ctr's flag parser: in
 * `berth run --rm IMAGE ID sh -c 'exit 3'` the `-c` belongs to the container's command, not to berth. A `--`
 * also ends the options (needed to pass an argument such as `-n` that berth's global options would otherwise take).
 */
import { Command, type ParseOptionsResult } from "commander";

/** commander's internal entry point for a command's own arguments (stable across v9–v14). */
interface ParseCommandHook {
  _parseCommand(operands: string[], unknown: string[]): unknown;
}

export class PositionalCommand extends Command {
  constructor(name?: string) {
    super(name);
    this.allowExcessArguments(true);
    // the parent hands over what it did not understand split in two lists: put them back in order
    const self = this as unknown as ParseCommandHook;
    const original = self._parseCommand.bind(this);
    self._parseCommand = (operands: string[], unknown: string[]) => original([], [...operands, ...unknown]);
  }

  override parseOptions(argv: string[]): ParseOptionsResult {
    let i = 0;
    for (; i < argv.length; i++) {
      const arg = argv[i] as string;
      if (arg === "--") {
        return { ...super.parseOptions(argv.slice(0, i)), operands: argv.slice(i + 1) };
      }
      if (arg.length < 2 || !arg.startsWith("-")) break;
      const name = arg.includes("=") ? arg.slice(0, arg.indexOf("=")) : arg;
      const option = this.options.find((o) => o.long === name || o.short === name);
      // an option with a value takes the next argument unless written --name=value
      if (option && (option.required || option.optional) && !arg.includes("=") && !option.optional) i++;
    }
    const parsed = super.parseOptions(argv.slice(0, Math.min(i, argv.length)));
    return { operands: [...parsed.operands, ...argv.slice(i)], unknown: parsed.unknown };
  }
}

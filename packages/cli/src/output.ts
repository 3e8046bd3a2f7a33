/**
 * The output layer: the only module that writes to the process streams. Everything else builds strings
 * (tables, lines, JSON) and hands them to an {@link Output}.
 */

/** Where a command writes. Tests use {@link createBufferOutput}; the binary uses {@link createProcessOutput}. */
export interface Output {
  /** Writes text to standard output as is (callers add newlines). */
  stdout(text: string): void;
  /** Writes text to standard error as is (callers add newlines). */
  stderr(text: string): void;
  /** Writes bytes to standard output; resolves once more may be written (backpressure). */
  stdoutBytes(data: Uint8Array): Promise<void>;
  /** The terminal behind standard error, for progress bars; `undefined` when stderr is not a TTY. */
  readonly stderrTty?: NodeJS.WriteStream;
}

/** An {@link Output} that collects everything, for tests. */
export interface BufferOutput extends Output {
  readonly out: string;
  readonly err: string;
  /** Everything written with `stdoutBytes`, concatenated. */
  readonly bytes: Buffer;
}

/** Writes to `process.stdout` / `process.stderr`. A closed pipe (`berth events | head`) ends the process quietly. */
export function createProcessOutput(): Output {
  const onPipeError = (err: NodeJS.ErrnoException) => {
    if (err.code === "EPIPE") process.exit(0);
    throw err;
  };
  process.stdout.on("error", onPipeError);
  return {
    stdout: (text) => {
      process.stdout.write(text);
    },
    stderr: (text) => {
      process.stderr.write(text);
    },
    stdoutBytes: (data) =>
      new Promise<void>((resolve, reject) => {
        const onError = (err: Error) => reject(err);
        process.stdout.once("error", onError);
        const done = () => {
          process.stdout.off("error", onError);
          resolve();
        };
        if (process.stdout.write(data)) done();
        else process.stdout.once("drain", done);
      }),
    stderrTty: process.stderr.isTTY ? process.stderr : undefined,
  };
}

export function createBufferOutput(): BufferOutput {
  let out = "";
  let err = "";
  const chunks: Buffer[] = [];
  return {
    stdout: (text) => {
      out += text;
    },
    stderr: (text) => {
      err += text;
    },
    get out() {
      return out;
    },
    stdoutBytes: async (data) => {
      chunks.push(Buffer.from(data));
    },
    get err() {
      return err;
    },
    get bytes() {
      return Buffer.concat(chunks);
    },
  };
}

/** Prints one JSON document per line (`--json`). */
export function writeJson(out: Output, value: unknown): void {
  out.stdout(`${JSON.stringify(value, jsonReplacer)}\n`);
}

function jsonReplacer(_key: string, value: unknown): unknown {
  return typeof value === "bigint" ? value.toString() : value;
}

// ---------------------------------------------------------------------------------------------------
// tabwriter

export interface TabWriterOptions {
  /** Minimal cell width including padding (Go: minwidth). */
  readonly minWidth?: number;
  /** Padding added to a cell's width before computing the column width (Go: padding). */
  readonly padding?: number;
  /**
   * The padding character (Go: padchar). With `"\t"` cells are padded with tabs to the next multiple of
   * `tabWidth`, as Go does (`ctr content ls` uses this).
   */
  readonly padChar?: string;
  /** Width of a tab for `padChar: "\t"` (Go: tabwidth; ctr uses 8). */
  readonly tabWidth?: number;
}

/**
 * Formats tab-separated text the way Go's `text/tabwriter` does with flags 0 and a non-tab pad character:
 * a cell is text terminated by a tab; the last, unterminated cell of a line takes no part in alignment;
 * a column block is a run of consecutive lines that all have a cell in that column, and every cell of the
 * block is padded to `max(minWidth, widest cell + padding)`. Widths count code points, as Go counts runes.
 */
export function tabwrite(text: string, options: TabWriterOptions = {}): string {
  const minWidth = options.minWidth ?? 0;
  const padding = options.padding ?? 1;
  const padChar = options.padChar ?? " ";
  const tabWidth = options.tabWidth ?? 8;
  const pad =
    padChar === "\t"
      ? (textWidth: number, cellWidth: number) => {
          // Go: the cell width is rounded up to a multiple of the tab width, then filled with whole tabs
          const cellw = Math.ceil(cellWidth / tabWidth) * tabWidth;
          return "\t".repeat(Math.ceil(Math.max(0, cellw - textWidth) / tabWidth));
        }
      : (textWidth: number, cellWidth: number) => padChar.repeat(Math.max(0, cellWidth - textWidth));
  const lines = text.split("\n").map((line) => line.split("\t"));
  const out: string[] = [];
  const widths: number[] = [];

  const writeLines = (line0: number, line1: number) => {
    for (let i = line0; i < line1; i++) {
      const cells = lines[i] ?? [];
      let s = "";
      cells.forEach((cell, j) => {
        s += cell;
        const w = widths[j];
        if (w !== undefined) s += pad(runeCount(cell), w);
      });
      out.push(s);
    }
  };

  const format = (start: number, end: number) => {
    let line0 = start;
    const column = widths.length;
    for (let cur = start; cur < end; cur++) {
      if (column >= (lines[cur]?.length ?? 0) - 1) continue;
      // a cell exists in this column: print the lines before the block, then format the block
      writeLines(line0, cur);
      line0 = cur;
      let width = minWidth;
      for (; cur < end; cur++) {
        const cells = lines[cur] ?? [];
        if (column >= cells.length - 1) break;
        const w = runeCount(cells[column] ?? "") + padding;
        if (w > width) width = w;
      }
      widths.push(width);
      format(line0, cur);
      widths.pop();
      line0 = cur;
    }
    writeLines(line0, end);
  };

  format(0, lines.length);
  return out.join("\n");
}

/** A buffer with Go's `tabwriter.Writer` usage pattern: `write` rows, then `flush` once. */
export class TabWriter {
  #buf = "";
  constructor(private readonly options: TabWriterOptions = {}) {}

  /** Appends raw text (cells separated by `\t`, lines by `\n`). */
  write(text: string): this {
    this.#buf += text;
    return this;
  }

  /** Appends one line whose cells are each tab-terminated, as ctr prints (`"%s\t%s\t\n"`). */
  row(...cells: readonly string[]): this {
    return this.write(`${cells.map((c) => `${c}\t`).join("")}\n`);
  }

  /** Returns the formatted text and empties the buffer. */
  flush(): string {
    const s = tabwrite(this.#buf, this.options);
    this.#buf = "";
    return s;
  }
}

function runeCount(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

// ---------------------------------------------------------------------------------------------------
// small shared formatters

/** `k=v` pairs sorted and comma-joined, as `ctr namespaces ls` prints labels. */
export function formatLabels(labels: Readonly<Record<string, string>>): string {
  return Object.entries(labels)
    .map(([k, v]) => `${k}=${v}`)
    .sort(compareStrings)
    .join(",");
}

/** Byte-order string comparison (Go's `sort.Strings`), not locale order. */
export function compareStrings(a: string, b: string): number {
  if (a === b) return 0;
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

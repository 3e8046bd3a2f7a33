/** Byte sources for `content ingest`: a regular file (seekable, size known) or a stream such as a pipe. */
import { fstatSync, read } from "node:fs";
import { type FileHandle, open } from "node:fs/promises";
import type { Readable } from "node:stream";

export interface ByteSource {
  /** The number of bytes the source holds, when known (regular files). */
  readonly size: number | undefined;
  /** True when the source can be positioned (`seek`); otherwise bytes before an offset are read and dropped. */
  readonly seekable: boolean;
  /**
   * The next bytes, at most `max`, from the current position; an empty array at the end. With `into` (at least
   * `max` bytes), the source may fill it and return a view of it instead of a new buffer: the caller reuses its
   * buffers once done with their bytes, and large fresh buffers are costly (page faults, then GC).
   */
  read(max: number, into?: Buffer): Promise<Uint8Array>;
  /** Positions a seekable source at `offset` from its start. */
  seek(offset: number): Promise<void>;
  close(): Promise<void>;
}

/** A regular file read with positional reads (no stream, no copy beyond the read itself). */
export class FileSource implements ByteSource {
  readonly seekable = true;
  #position = 0;
  private constructor(
    private readonly handle: FileHandle | number,
    readonly size: number,
    private readonly ownsHandle: boolean,
  ) {}

  static async open(path: string): Promise<FileSource> {
    const handle = await open(path, "r");
    try {
      const st = await handle.stat();
      return new FileSource(handle, st.isFile() ? st.size : 0, true);
    } catch (err) {
      await handle.close();
      throw err;
    }
  }

  /** Wraps an already open descriptor (standard input redirected from a file); it is not closed. */
  static fromFd(fd: number, size: number): FileSource {
    return new FileSource(fd, size, false);
  }

  async read(max: number, into?: Buffer): Promise<Uint8Array> {
    const buf = into !== undefined && into.length >= max ? into.subarray(0, max) : Buffer.allocUnsafe(max);
    const bytesRead =
      typeof this.handle === "number"
        ? await readFd(this.handle, buf, this.#position)
        : (await this.handle.read(buf, 0, max, this.#position)).bytesRead;
    this.#position += bytesRead;
    return bytesRead === max ? buf : buf.subarray(0, bytesRead);
  }

  async seek(offset: number): Promise<void> {
    this.#position = offset;
  }

  async close(): Promise<void> {
    if (this.ownsHandle && typeof this.handle !== "number") await this.handle.close();
  }
}

function readFd(fd: number, buf: Buffer, position: number): Promise<number> {
  return new Promise((resolve, reject) => {
    read(fd, buf, 0, buf.length, position, (err, n) => (err ? reject(err) : resolve(n)));
  });
}

/** A non-seekable stream (a pipe, a terminal); chunks are gathered into reads of up to `max` bytes. */
export class StreamSource implements ByteSource {
  readonly seekable = false;
  readonly size = undefined;
  readonly #iterator: AsyncIterator<Buffer | string>;
  #pending: Buffer[] = [];
  #pendingBytes = 0;
  #ended = false;

  constructor(stream: Readable | AsyncIterable<Buffer | string>) {
    this.#iterator = (stream as AsyncIterable<Buffer | string>)[Symbol.asyncIterator]();
  }

  async read(max: number, into?: Buffer): Promise<Uint8Array> {
    while (this.#pendingBytes < max && !this.#ended) {
      const next = await this.#iterator.next();
      if (next.done) {
        this.#ended = true;
        break;
      }
      const chunk = typeof next.value === "string" ? Buffer.from(next.value) : next.value;
      if (chunk.length === 0) continue;
      this.#pending.push(chunk);
      this.#pendingBytes += chunk.length;
    }
    if (into !== undefined && into.length >= max && this.#pending.length > 1) {
      // gather into the caller's buffer rather than concatenating into a new one
      let filled = 0;
      while (filled < max && this.#pending.length > 0) {
        const chunk = this.#pending[0] as Buffer;
        const take = Math.min(chunk.length, max - filled);
        chunk.copy(into, filled, 0, take);
        filled += take;
        if (take === chunk.length) this.#pending.shift();
        else this.#pending[0] = chunk.subarray(take);
      }
      this.#pendingBytes -= filled;
      return into.subarray(0, filled);
    }
    const all = this.#pending.length === 1 ? (this.#pending[0] as Buffer) : Buffer.concat(this.#pending);
    const out = all.subarray(0, Math.min(max, all.length));
    const rest = all.subarray(out.length);
    this.#pending = rest.length > 0 ? [rest] : [];
    this.#pendingBytes = rest.length;
    return out;
  }

  async seek(): Promise<void> {
    throw new Error("cannot seek a stream");
  }

  async close(): Promise<void> {
    await this.#iterator.return?.();
  }
}

/** Standard input: positional reads when it is a regular file, a stream otherwise. */
export function stdinSource(stdin: () => Readable = () => process.stdin): ByteSource {
  try {
    const st = fstatSync(0);
    if (st.isFile()) return FileSource.fromFd(0, st.size);
  } catch {
    // no descriptor 0: read the stream
  }
  return new StreamSource(stdin());
}

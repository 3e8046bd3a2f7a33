// A pull reader over an async iterable of chunks: exact-size reads without copying where a chunk holds the
// whole request. Every chunk is handed to `onChunk` as it is pulled (the diffID hash and the size cap sit there).
import { DataLossError } from "@berth/errdefs";

const EMPTY = Buffer.alloc(0);

export class ByteSource {
  private readonly it: AsyncIterator<Uint8Array>;
  private cur: Buffer = EMPTY;
  private pos = 0;
  private done = false;

  constructor(
    source: AsyncIterable<Uint8Array>,
    private readonly onChunk: (chunk: Buffer) => void,
  ) {
    this.it = source[Symbol.asyncIterator]();
  }

  /** Bytes buffered and not yet consumed. */
  private get avail(): number {
    return this.cur.length - this.pos;
  }

  private async pull(): Promise<boolean> {
    while (!this.done) {
      const r = await this.it.next();
      if (r.done) {
        this.done = true;
        return false;
      }
      const v = r.value;
      if (v.length === 0) continue;
      const chunk = Buffer.isBuffer(v) ? v : Buffer.from(v.buffer, v.byteOffset, v.length);
      this.onChunk(chunk);
      this.cur = chunk;
      this.pos = 0;
      return true;
    }
    return false;
  }

  /**
   * Reads exactly n bytes. Returns null when the stream ends before the first byte (a clean end); throws when
   * it ends part-way.
   */
  async readExact(n: number, what: string): Promise<Buffer | null> {
    if (this.avail >= n) {
      const out = this.cur.subarray(this.pos, this.pos + n);
      this.pos += n;
      return out;
    }
    const parts: Buffer[] = [];
    let got = 0;
    while (got < n) {
      if (this.avail === 0 && !(await this.pull())) {
        if (got === 0) return null;
        throw truncated(what);
      }
      const take = Math.min(n - got, this.avail);
      parts.push(this.cur.subarray(this.pos, this.pos + take));
      this.pos += take;
      got += take;
    }
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts, n);
  }

  /** Yields exactly n bytes as slices; throws when the stream ends first. */
  async *take(n: number, what: string): AsyncGenerator<Buffer> {
    let left = n;
    while (left > 0) {
      if (this.avail === 0 && !(await this.pull())) throw truncated(what);
      const take = Math.min(left, this.avail);
      const out = this.cur.subarray(this.pos, this.pos + take);
      this.pos += take;
      left -= take;
      yield out;
    }
  }

  async skip(n: number, what: string): Promise<void> {
    for await (const _ of this.take(n, what)) {
      // discard
    }
  }

  /** Reads (and so hashes) everything left in the stream. */
  async drain(): Promise<void> {
    this.pos = this.cur.length;
    while (await this.pull()) this.pos = this.cur.length;
  }

  /** Stops pulling, letting the source release its resources. */
  async close(): Promise<void> {
    if (!this.done) {
      this.done = true;
      await this.it.return?.();
    }
  }
}

export function truncated(what: string): InstanceType<typeof DataLossError> {
  return new DataLossError(`layer stream truncated in ${what}`);
}

import { HEADER_LENGTH, MAX_MESSAGE_LENGTH } from "./wire.js";

export interface FrameSink {
  /** A complete frame. `payload` may be a view into the socket chunk: consume or copy it before returning. */
  frame(streamId: number, type: number, flags: number, payload: Buffer): void;
  /** A frame whose declared length exceeds the maximum; its payload is discarded as it arrives. */
  oversized(streamId: number, type: number, length: number): void;
}

/**
 * Incremental frame parser. Frames that lie wholly inside one chunk are handed out as views (no copy); a frame
 * split over chunks is assembled into one buffer of its exact size (one allocation, no repeated concat).
 */
export class FrameReader {
  private readonly header = Buffer.allocUnsafe(HEADER_LENGTH);
  private headerFill = 0;
  private body: Buffer | undefined;
  private bodyFill = 0;
  private streamId = 0;
  private type = 0;
  private flags = 0;
  private discard = 0;

  constructor(
    private readonly sink: FrameSink,
    private readonly maxLength: number = MAX_MESSAGE_LENGTH,
  ) {}

  push(chunk: Buffer): void {
    const end = chunk.length;
    let pos = 0;
    while (pos < end) {
      if (this.discard > 0) {
        const n = Math.min(this.discard, end - pos);
        this.discard -= n;
        pos += n;
        continue;
      }
      const body = this.body;
      if (body !== undefined) {
        const n = Math.min(body.length - this.bodyFill, end - pos);
        chunk.copy(body, this.bodyFill, pos, pos + n);
        this.bodyFill += n;
        pos += n;
        if (this.bodyFill === body.length) {
          this.body = undefined;
          this.sink.frame(this.streamId, this.type, this.flags, body);
        }
        continue;
      }
      let length: number;
      if (this.headerFill === 0 && end - pos >= HEADER_LENGTH) {
        // Fast path: the whole header is in this chunk.
        length = chunk.readUInt32BE(pos);
        this.streamId = chunk.readUInt32BE(pos + 4);
        this.type = chunk[pos + 8] as number;
        this.flags = chunk[pos + 9] as number;
        pos += HEADER_LENGTH;
      } else {
        const n = Math.min(HEADER_LENGTH - this.headerFill, end - pos);
        chunk.copy(this.header, this.headerFill, pos, pos + n);
        this.headerFill += n;
        pos += n;
        if (this.headerFill < HEADER_LENGTH) return;
        this.headerFill = 0;
        const h = this.header;
        length = h.readUInt32BE(0);
        this.streamId = h.readUInt32BE(4);
        this.type = h[8] as number;
        this.flags = h[9] as number;
      }
      if (length > this.maxLength) {
        this.discard = length;
        this.sink.oversized(this.streamId, this.type, length);
        continue;
      }
      if (end - pos >= length) {
        const payload = chunk.subarray(pos, pos + length);
        pos += length;
        this.sink.frame(this.streamId, this.type, this.flags, payload);
        continue;
      }
      const assembled = Buffer.allocUnsafe(length);
      chunk.copy(assembled, 0, pos, end);
      this.bodyFill = end - pos;
      this.body = assembled;
      pos = end;
    }
  }

  /** True while a frame is partially received. */
  get pending(): boolean {
    return this.headerFill > 0 || this.body !== undefined || this.discard > 0;
  }
}

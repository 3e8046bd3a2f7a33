import type { Socket } from "node:net";

function endTick(w: FrameWriter): void {
  w.inTick = false;
  if (w.corked) {
    w.corked = false;
    if (!w.socket.destroyed) w.socket.uncork();
  }
}

/**
 * Writes frames to a socket. The first frame of an event-loop tick is written at once (lowest latency for
 * sequential calls); further frames in the same tick are corked and leave as one writev when the tick ends.
 */
export class FrameWriter {
  inTick = false;
  corked = false;

  constructor(readonly socket: Socket) {}

  write(frame: Uint8Array): void {
    if (!this.inTick) {
      this.inTick = true;
      process.nextTick(endTick, this);
    } else if (!this.corked) {
      this.corked = true;
      this.socket.cork();
    }
    this.socket.write(frame);
  }
}

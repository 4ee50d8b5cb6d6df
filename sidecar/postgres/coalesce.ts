// Forwarded messages are written as few, large writes: consecutive messages that sit back to back
// in memory (as they arrived in one chunk) go out as one view of that memory, unchanged and
// uncopied. Anything the gateway builds itself flushes the run first, so order is kept.
import type { Socket } from 'node:net';

export class WriteCoalescer {
  private memory: ArrayBufferLike | undefined;
  private start = 0;
  private end = 0;
  private readonly socket: Socket;

  constructor(socket: Socket) {
    this.socket = socket;
  }

  /** Queues raw bytes received from the other side, to be written unchanged. */
  forward(raw: Buffer): void {
    if (this.memory === raw.buffer && this.end === raw.byteOffset) {
      this.end += raw.length;
      return;
    }
    this.flush();
    this.memory = raw.buffer;
    this.start = raw.byteOffset;
    this.end = raw.byteOffset + raw.length;
  }

  /** Writes bytes built by the gateway, after everything queued before them. */
  send(bytes: Buffer): void {
    this.flush();
    this.socket.write(bytes);
  }

  flush(): void {
    if (this.memory === undefined) return;
    const view = Buffer.from(this.memory, this.start, this.end - this.start);
    this.memory = undefined;
    this.socket.write(view);
  }
}

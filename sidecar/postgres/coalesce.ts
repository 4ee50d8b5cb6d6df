// Forwarded messages are written as few, large writes: consecutive messages that sit back to back
// in memory (as they arrived in one chunk) go out as one view of that memory, unchanged and
// uncopied. Bytes the gateway builds itself are queued in order with them. flush() hands the whole
// batch to the socket at once: one plain write in the common case (a single run), a corked
// sequence of writes (one writev) otherwise, so callers need no cork/uncork of their own.
import type { Socket } from 'node:net';

export class WriteCoalescer {
  private memory: ArrayBufferLike | undefined;
  private start = 0;
  private end = 0;
  private queued: Buffer[] = [];
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
    this.closeRun();
    this.memory = raw.buffer;
    this.start = raw.byteOffset;
    this.end = raw.byteOffset + raw.length;
  }

  /** forward() of buf[start, end), without making a view of it first. */
  forwardRange(buf: Buffer, start: number, end: number): void {
    const from = buf.byteOffset + start;
    if (this.memory === buf.buffer && this.end === from) {
      this.end += end - start;
      return;
    }
    this.closeRun();
    this.memory = buf.buffer;
    this.start = from;
    this.end = buf.byteOffset + end;
  }

  /** Queues bytes built by the gateway, after everything queued before them. */
  send(bytes: Buffer): void {
    this.closeRun();
    this.queued.push(bytes);
  }

  /** Writes everything queued, in order. */
  flush(): void {
    const queued = this.queued;
    if (queued.length === 0) {
      if (this.memory === undefined) return;
      const view = Buffer.from(this.memory, this.start, this.end - this.start);
      this.memory = undefined;
      this.socket.write(view);
      return;
    }
    this.closeRun();
    this.queued = [];
    if (queued.length === 1) {
      this.socket.write(queued[0]!);
      return;
    }
    const socket = this.socket;
    socket.cork();
    for (const b of queued) socket.write(b);
    socket.uncork();
  }

  private closeRun(): void {
    if (this.memory === undefined) return;
    this.queued.push(Buffer.from(this.memory, this.start, this.end - this.start));
    this.memory = undefined;
  }
}

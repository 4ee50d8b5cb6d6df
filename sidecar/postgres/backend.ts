// The upstream's side of the wire: split into messages so each can be forwarded as raw bytes, and
// decoded with pg-protocol's Parser only where the gateway needs the content.
import type { BackendMessage } from 'pg-protocol/dist/messages.js';
import { Parser } from 'pg-protocol/dist/parser.js';

/** Upper bound for one backend message (a DataRow holds at most 1 GiB per field). */
export const MAX_BACKEND_MESSAGE_BYTES = 1024 * 1024 * 1024 + 1024 * 1024;

export interface BackendFrame {
  type: number;
  raw: Buffer;
}

const EMPTY = Buffer.alloc(0);

/**
 * Splits the upstream's byte stream into messages. nextType() finds the next one without
 * allocating (the relay's hot path reads frameBuf[frameStart, frameEnd) in place); next() is the
 * same as an object with a view, for code that is not on that path.
 */
export class BackendFramer {
  private buf: Buffer = EMPTY;
  private pos = 0;
  private more: Buffer[] = [];
  private moreBytes = 0;
  error: string | undefined;
  /** The message found by the last nextType(), valid until the next push(), retain() or takeRest(). */
  frameBuf: Buffer = EMPTY;
  frameStart = 0;
  frameEnd = 0;

  push(chunk: Buffer): void {
    if (this.pos >= this.buf.length && this.moreBytes === 0) {
      this.buf = chunk;
      this.pos = 0;
    } else {
      this.more.push(chunk);
      this.moreBytes += chunk.length;
    }
  }

  private ensure(n: number): boolean {
    const have = this.buf.length - this.pos;
    if (have >= n) return true;
    if (have + this.moreBytes < n) return false;
    this.join();
    return true;
  }

  /** Everything not consumed yet, as one buffer of its own. */
  private join(): void {
    this.buf = Buffer.concat([this.buf.subarray(this.pos), ...this.more]);
    this.pos = 0;
    this.more = [];
    this.moreBytes = 0;
  }

  /** The type byte of the next complete message (then in frameBuf), or -1: more bytes needed or broken. */
  nextType(): number {
    if (this.error || !this.ensure(5)) return -1;
    const len = this.buf.readInt32BE(this.pos + 1);
    if (len < 4 || len > MAX_BACKEND_MESSAGE_BYTES) {
      this.error = `invalid backend message length ${len}`;
      return -1;
    }
    if (!this.ensure(len + 1)) return -1;
    const start = this.pos;
    this.frameBuf = this.buf;
    this.frameStart = start;
    this.frameEnd = start + len + 1;
    this.pos = this.frameEnd;
    return this.buf[start]!;
  }

  /** The next complete message, undefined when more bytes are needed or the stream is broken. */
  next(): BackendFrame | undefined {
    const type = this.nextType();
    if (type < 0) return undefined;
    return { type, raw: this.frameBuf.subarray(this.frameStart, this.frameEnd) };
  }

  /** Copies the bytes still waiting, so the chunks they came in may be reused. */
  retain(): void {
    if (this.pos >= this.buf.length && this.moreBytes === 0) {
      this.buf = EMPTY;
      this.pos = 0;
      return;
    }
    this.join();
  }

  /** Whatever arrived after the last complete message (handed to the relay after login). */
  takeRest(): Buffer {
    this.join();
    const rest = this.buf;
    this.buf = EMPTY;
    return rest;
  }
}

const decoder = new Parser();

/** Decodes one complete backend message with pg-protocol (synchronous: the message is whole). */
export function decodeBackend<T = BackendMessage>(raw: Buffer): T {
  let out: BackendMessage | undefined;
  decoder.parse(raw, (m) => {
    out = m;
  });
  if (!out) throw new Error('incomplete backend message');
  return out as unknown as T;
}

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

export class BackendFramer {
  private buf: Buffer = Buffer.alloc(0);
  private more: Buffer[] = [];
  private moreBytes = 0;
  error: string | undefined;

  push(chunk: Buffer): void {
    if (this.buf.length === 0 && this.moreBytes === 0) this.buf = chunk;
    else {
      this.more.push(chunk);
      this.moreBytes += chunk.length;
    }
  }

  private ensure(n: number): boolean {
    if (this.buf.length >= n) return true;
    if (this.buf.length + this.moreBytes < n) return false;
    this.buf = Buffer.concat([this.buf, ...this.more]);
    this.more = [];
    this.moreBytes = 0;
    return true;
  }

  /** The next complete message, undefined when more bytes are needed or the stream is broken. */
  next(): BackendFrame | undefined {
    if (this.error || !this.ensure(5)) return undefined;
    const len = this.buf.readInt32BE(1);
    if (len < 4 || len > MAX_BACKEND_MESSAGE_BYTES) {
      this.error = `invalid backend message length ${len}`;
      return undefined;
    }
    if (!this.ensure(len + 1)) return undefined;
    const buf = this.buf;
    const raw = buf.subarray(0, len + 1);
    this.buf = buf.length === len + 1 ? Buffer.alloc(0) : buf.subarray(len + 1);
    return { type: raw[0]!, raw };
  }

  /** Copies the bytes still waiting, so the chunks they came in may be reused. */
  retain(): void {
    if (this.buf.length === 0 && this.moreBytes === 0) return;
    this.buf = Buffer.concat([this.buf, ...this.more]);
    this.more = [];
    this.moreBytes = 0;
  }

  /** Whatever arrived after the last complete message (handed to the relay after login). */
  takeRest(): Buffer {
    const rest = Buffer.concat([this.buf, ...this.more]);
    this.buf = Buffer.alloc(0);
    this.more = [];
    this.moreBytes = 0;
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

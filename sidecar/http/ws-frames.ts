// A passive reader of WebSocket frames (RFC 6455 §5.2) for the recording: it sees the bytes the
// relay forwards unchanged and reports each frame's opcode and (unmasked) payload prefix. It never
// holds more than one frame header plus the kept prefix, whatever the frame size.

export type Opcode = 'text' | 'binary' | 'close' | 'ping' | 'pong';
const OPCODES: Record<number, Opcode> = { 1: 'text', 2: 'binary', 8: 'close', 9: 'ping', 10: 'pong' };

export interface Frame {
  /** The message's opcode (a continuation frame carries its first frame's). */
  opcode: Opcode;
  /** First frame of a message. */
  first: boolean;
  fin: boolean;
  /** Payload bytes of the frame. */
  bytes: number;
  /** The payload's first `cap` bytes, unmasked. */
  data: Buffer;
}

export class FrameReader {
  private header = Buffer.alloc(0);
  private remaining = 0;
  private mask: Buffer | undefined;
  private offset = 0;
  private current: Omit<Frame, 'data'> | undefined;
  private kept: Buffer[] = [];
  private keptBytes = 0;
  private messageOpcode: Opcode = 'binary';
  /** Set when the stream is not WebSocket framing (the relay then closes). */
  error: string | undefined;
  private readonly cap: number;
  private readonly onFrame: (f: Frame) => void;
  private readonly onPayload: ((part: Buffer) => void) | undefined;

  /** onPayload: every payload byte of data messages (text, binary), unmasked, as it arrives. */
  constructor(cap: number, onFrame: (f: Frame) => void, onPayload?: (part: Buffer) => void) {
    this.cap = cap;
    this.onFrame = onFrame;
    this.onPayload = onPayload;
  }

  push(chunk: Buffer): void {
    let pos = 0;
    while (pos < chunk.length && !this.error) {
      if (!this.current) {
        const need = this.headerLength();
        const take = Math.min(chunk.length - pos, Math.max(need, 2) - this.header.length);
        this.header = Buffer.concat([this.header, chunk.subarray(pos, pos + take)]);
        pos += take;
        if (this.header.length >= 2 && this.header.length >= this.headerLength()) this.startFrame();
        continue;
      }
      const take = Math.min(chunk.length - pos, this.remaining);
      this.payload(chunk.subarray(pos, pos + take));
      pos += take;
      this.remaining -= take;
      if (this.remaining === 0) this.endFrame();
    }
  }

  private headerLength(): number {
    if (this.header.length < 2) return 2;
    const b1 = this.header[1]!;
    const len = b1 & 0x7f;
    return 2 + (len === 126 ? 2 : len === 127 ? 8 : 0) + (b1 & 0x80 ? 4 : 0);
  }

  private startFrame(): void {
    const h = this.header;
    const fin = (h[0]! & 0x80) !== 0;
    const code = h[0]! & 0x0f;
    const masked = (h[1]! & 0x80) !== 0;
    let len = h[1]! & 0x7f;
    let off = 2;
    if (len === 126) {
      len = h.readUInt16BE(2);
      off = 4;
    } else if (len === 127) {
      const big = h.readBigUInt64BE(2);
      if (big > BigInt(Number.MAX_SAFE_INTEGER)) {
        this.error = 'frame too large';
        return;
      }
      len = Number(big);
      off = 10;
    }
    let first = true;
    if (code === 0) first = false;
    else if (OPCODES[code]) {
      if (code < 8) this.messageOpcode = OPCODES[code]!;
    } else {
      this.error = `unknown opcode ${code}`;
      return;
    }
    this.mask = masked ? h.subarray(off, off + 4) : undefined;
    this.current = { opcode: code >= 8 ? OPCODES[code]! : this.messageOpcode, first, fin, bytes: len };
    this.remaining = len;
    this.offset = 0;
    this.kept = [];
    this.keptBytes = 0;
    this.header = Buffer.alloc(0);
    if (len === 0) this.endFrame();
  }

  private payload(part: Buffer): void {
    const data = this.current!.opcode === 'binary' || this.current!.opcode === 'text';
    if (this.onPayload && data && part.length > 0) {
      const all = Buffer.from(part);
      if (this.mask) for (let i = 0; i < all.length; i++) all[i]! ^= this.mask[(this.offset + i) % 4]!;
      this.onPayload(all);
    }
    if (this.keptBytes < this.cap) {
      const keep = Buffer.from(part.subarray(0, this.cap - this.keptBytes));
      if (this.mask) for (let i = 0; i < keep.length; i++) keep[i]! ^= this.mask[(this.offset + i) % 4]!;
      this.kept.push(keep);
      this.keptBytes += keep.length;
    }
    this.offset += part.length;
  }

  private endFrame(): void {
    const f = this.current!;
    this.current = undefined;
    this.onFrame({ ...f, data: Buffer.concat(this.kept) });
  }
}

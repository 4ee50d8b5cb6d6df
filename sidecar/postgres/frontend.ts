// The agent's side of the wire, parsed defensively: the agent is untrusted, so every length is
// checked against the bytes at hand and a cap, and nothing here throws. A protocol error is sticky:
// the session answers 08P01 and closes, other sessions are untouched.
import { CANCEL_REQUEST_CODE, F, GSSENC_REQUEST_CODE, SSL_REQUEST_CODE } from './protocol.ts';

export const DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024;
const MAX_STARTUP_BYTES = 10_000; // the server's own limit for startup packets

export class ProtocolError {
  readonly message: string;
  constructor(message: string) {
    this.message = message;
  }
}

export type StartupPacket =
  | { kind: 'ssl' }
  | { kind: 'gssenc' }
  | { kind: 'cancel'; pid: number; secret: number }
  | { kind: 'startup'; protocol: number; params: Record<string, string>; unknownOptions: string[] };

/** One typed frontend message; raw holds type byte, length and body, never mutated afterwards. */
export interface FrontendMessage {
  type: number;
  raw: Buffer;
}

const KNOWN_TYPES = new Set<number>(Object.values(F));
// Messages without a body: anything else is garbage.
const EMPTY_BODY = new Set<number>([F.sync, F.flush, F.copyDone, F.terminate]);
/** What is left of a chunk read to its end: one shared empty buffer, not one per message. */
const NOTHING = Buffer.alloc(0);

export class FrontendParser {
  private buf: Buffer = NOTHING;
  // Chunks not yet joined to buf: a large message arriving in many chunks is joined once, when
  // complete, instead of once per chunk.
  private more: Buffer[] = [];
  private moreBytes = 0;
  private error: ProtocolError | undefined;
  private readonly maxMessageBytes: number;

  constructor(maxMessageBytes = DEFAULT_MAX_MESSAGE_BYTES) {
    this.maxMessageBytes = maxMessageBytes;
  }

  /** Bytes received but not yet returned as a message (a truncated frame when the socket ends). */
  get pendingBytes(): number {
    return this.buf.length + this.moreBytes;
  }

  push(chunk: Buffer): void {
    if (this.error || chunk.length === 0) return;
    if (this.buf.length === 0 && this.moreBytes === 0) this.buf = chunk;
    else {
      this.more.push(chunk);
      this.moreBytes += chunk.length;
    }
  }

  /** Makes the first n bytes contiguous in buf; false when fewer are available. */
  private ensure(n: number): boolean {
    if (this.buf.length >= n) return true;
    if (this.buf.length + this.moreBytes < n) return false;
    // Concatenate instead of compacting in place: messages handed out earlier may still be queued
    // on a socket and must not change under it.
    this.buf = Buffer.concat([this.buf, ...this.more]);
    this.more = [];
    this.moreBytes = 0;
    return true;
  }

  /** The next startup-phase packet, undefined when more bytes are needed. */
  nextStartup(): StartupPacket | ProtocolError | undefined {
    if (this.error) return this.error;
    if (!this.ensure(4)) return undefined;
    const len = this.buf.readInt32BE(0);
    if (len < 8 || len > MAX_STARTUP_BYTES) return this.fail(`invalid startup packet length ${len}`);
    if (!this.ensure(len)) return undefined;
    const buf = this.buf;
    const packet = buf.subarray(0, len);
    this.buf = buf.subarray(len);
    const code = packet.readInt32BE(4);
    if (code === SSL_REQUEST_CODE) return len === 8 ? { kind: 'ssl' } : this.fail('malformed SSLRequest');
    if (code === GSSENC_REQUEST_CODE)
      return len === 8 ? { kind: 'gssenc' } : this.fail('malformed GSSENCRequest');
    if (code === CANCEL_REQUEST_CODE) {
      if (len !== 16) return this.fail('malformed CancelRequest');
      return { kind: 'cancel', pid: packet.readInt32BE(8), secret: packet.readInt32BE(12) };
    }
    if (code >> 16 !== 3) return this.fail(`unsupported frontend protocol ${code >> 16}.${code & 0xffff}`);
    const params: Record<string, string> = {};
    const unknownOptions: string[] = [];
    let at = 8;
    for (;;) {
      if (at >= len) return this.fail('startup packet is not terminated');
      if (packet[at] === 0) break;
      const keyEnd = packet.indexOf(0, at);
      if (keyEnd < 0 || keyEnd >= len - 1) return this.fail('startup packet parameter without value');
      const valueEnd = packet.indexOf(0, keyEnd + 1);
      if (valueEnd < 0) return this.fail('startup packet parameter value is not terminated');
      const key = packet.toString('utf8', at, keyEnd);
      const value = packet.toString('utf8', keyEnd + 1, valueEnd);
      if (key.startsWith('_pq_.')) unknownOptions.push(key);
      else params[key] = value;
      at = valueEnd + 1;
    }
    if (at !== len - 1) return this.fail('trailing bytes after startup packet parameters');
    return { kind: 'startup', protocol: code, params, unknownOptions };
  }

  /** The next typed message, undefined when more bytes are needed. */
  next(): FrontendMessage | ProtocolError | undefined {
    if (this.error) return this.error;
    if (!this.ensure(1)) return undefined;
    const type = this.buf[0]!;
    if (!KNOWN_TYPES.has(type))
      return this.fail(`unknown message type 0x${type.toString(16).padStart(2, '0')}`);
    if (!this.ensure(5)) return undefined;
    const len = this.buf.readInt32BE(1);
    if (len < 4) return this.fail(`invalid message length ${len}`);
    if (len > this.maxMessageBytes) {
      return this.fail(`message of ${len} bytes exceeds the limit of ${this.maxMessageBytes} bytes`);
    }
    if (EMPTY_BODY.has(type) && len !== 4)
      return this.fail(`invalid length ${len} for message '${String.fromCharCode(type)}'`);
    if (!this.ensure(len + 1)) return undefined;
    const buf = this.buf;
    const raw = buf.subarray(0, len + 1);
    this.buf = buf.length === len + 1 ? NOTHING : buf.subarray(len + 1);
    return { type, raw };
  }

  private fail(message: string): ProtocolError {
    this.error = new ProtocolError(message);
    this.buf = NOTHING;
    this.more = [];
    this.moreBytes = 0;
    return this.error;
  }
}

/** Reads fields of a message body with bounds checks; any overrun marks the reader failed. */
class Reader {
  private at: number;
  failed = false;
  private readonly raw: Buffer;
  constructor(raw: Buffer) {
    this.raw = raw;
    this.at = 5;
  }
  cstring(): string {
    const end = this.raw.indexOf(0, this.at);
    if (end < 0) {
      this.failed = true;
      return '';
    }
    const s = this.raw.toString('utf8', this.at, end);
    this.at = end + 1;
    return s;
  }
  int16(): number {
    if (this.at + 2 > this.raw.length) {
      this.failed = true;
      return 0;
    }
    const v = this.raw.readInt16BE(this.at);
    this.at += 2;
    return v;
  }
  int32(): number {
    if (this.at + 4 > this.raw.length) {
      this.failed = true;
      return 0;
    }
    const v = this.raw.readInt32BE(this.at);
    this.at += 4;
    return v;
  }
  byte(): number {
    if (this.at >= this.raw.length) {
      this.failed = true;
      return 0;
    }
    return this.raw[this.at++]!;
  }
  bytes(n: number): Buffer {
    if (n < 0 || this.at + n > this.raw.length) {
      this.failed = true;
      return Buffer.alloc(0);
    }
    const b = this.raw.subarray(this.at, this.at + n);
    this.at += n;
    return b;
  }
  get done(): boolean {
    return this.at === this.raw.length;
  }
}

function finish<T>(r: Reader, value: T, what: string): T | ProtocolError {
  if (r.failed) return new ProtocolError(`malformed ${what} message`);
  if (!r.done) return new ProtocolError(`trailing bytes in ${what} message`);
  return value;
}

export function decodeQuery(raw: Buffer): string | ProtocolError {
  const r = new Reader(raw);
  return finish(r, r.cstring(), 'Query');
}

export function decodePassword(raw: Buffer): string | ProtocolError {
  const r = new Reader(raw);
  return finish(r, r.cstring(), 'PasswordMessage');
}

export interface ParseMessage {
  name: string;
  sql: string;
  paramTypes: number[];
}
export function decodeParse(raw: Buffer): ParseMessage | ProtocolError {
  const r = new Reader(raw);
  const name = r.cstring();
  const sql = r.cstring();
  const n = r.int16();
  if (n < 0) return new ProtocolError('malformed Parse message');
  const paramTypes: number[] = [];
  for (let i = 0; i < n && !r.failed; i++) paramTypes.push(r.int32() >>> 0);
  return finish(r, { name, sql, paramTypes }, 'Parse');
}

export interface BindMessage {
  portal: string;
  statement: string;
  paramFormats: number[];
  params: (Buffer | null)[];
  resultFormats: number[];
}
export function decodeBind(raw: Buffer): BindMessage | ProtocolError {
  const r = new Reader(raw);
  const portal = r.cstring();
  const statement = r.cstring();
  const nf = r.int16();
  if (nf < 0) return new ProtocolError('malformed Bind message');
  const paramFormats: number[] = [];
  for (let i = 0; i < nf && !r.failed; i++) paramFormats.push(r.int16());
  const np = r.int16();
  if (np < 0) return new ProtocolError('malformed Bind message');
  const params: (Buffer | null)[] = [];
  for (let i = 0; i < np && !r.failed; i++) {
    const len = r.int32();
    params.push(len === -1 ? null : r.bytes(len));
  }
  const nr = r.int16();
  if (nr < 0) return new ProtocolError('malformed Bind message');
  const resultFormats: number[] = [];
  for (let i = 0; i < nr && !r.failed; i++) resultFormats.push(r.int16());
  return finish(r, { portal, statement, paramFormats, params, resultFormats }, 'Bind');
}

export interface TargetedMessage {
  kind: 'S' | 'P';
  name: string;
}
function decodeTargeted(raw: Buffer, what: string): TargetedMessage | ProtocolError {
  const r = new Reader(raw);
  const kind = String.fromCharCode(r.byte());
  const name = r.cstring();
  if (kind !== 'S' && kind !== 'P') return new ProtocolError(`malformed ${what} message`);
  return finish(r, { kind, name }, what);
}
export const decodeDescribe = (raw: Buffer) => decodeTargeted(raw, 'Describe');
export const decodeClose = (raw: Buffer) => decodeTargeted(raw, 'Close');

export function decodeExecute(raw: Buffer): { portal: string; maxRows: number } | ProtocolError {
  const r = new Reader(raw);
  const portal = r.cstring();
  const maxRows = r.int32();
  return finish(r, { portal, maxRows }, 'Execute');
}

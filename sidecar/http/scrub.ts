// An upstream that reflects request headers (an echo endpoint, a verbose error page) would hand
// the sidecar's credential to the agent. Every response body streams through this scrubber: each
// credential value is overwritten with "*" of the same length (Content-Length stays right), also
// when it straddles two chunks. Only the last len-1 bytes of a chunk are held back.
import { Transform, type TransformCallback } from 'node:stream';

/** Values shorter than this are not scrubbed (too likely to match ordinary text). */
const MIN_SECRET = 8;

export function secretValues(headers: Record<string, string>): Buffer[] {
  const out: Buffer[] = [];
  for (const v of Object.values(headers)) {
    const bare = v.replace(/^(Bearer|Basic)\s+/i, '');
    for (const s of new Set([v, bare])) if (s.length >= MIN_SECRET) out.push(Buffer.from(s));
  }
  // Longest first: "Bearer x" is scrubbed whole before "x" alone.
  return out.sort((a, b) => b.length - a.length);
}

export function scrubBuffer(buf: Buffer, secrets: readonly Buffer[]): number {
  let hits = 0;
  for (const s of secrets) {
    for (let i = buf.indexOf(s); i >= 0; i = buf.indexOf(s, i + s.length)) {
      buf.fill(0x2a, i, i + s.length);
      hits++;
    }
  }
  return hits;
}

export class Scrubber extends Transform {
  private tail: Buffer = Buffer.alloc(0);
  private readonly keep: number;
  private readonly secrets: readonly Buffer[];
  hits = 0;

  constructor(secrets: readonly Buffer[]) {
    super();
    this.secrets = secrets;
    this.keep = Math.max(0, ...secrets.map((s) => s.length - 1));
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (this.secrets.length === 0) {
      cb(null, chunk);
      return;
    }
    const buf = this.tail.length > 0 ? Buffer.concat([this.tail, chunk]) : Buffer.from(chunk);
    this.hits += scrubBuffer(buf, this.secrets);
    const cut = Math.max(0, buf.length - this.keep);
    this.tail = buf.subarray(cut);
    cb(null, buf.subarray(0, cut));
  }

  override _flush(cb: TransformCallback): void {
    cb(null, this.tail.length > 0 ? this.tail : undefined);
  }
}

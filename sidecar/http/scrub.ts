// An upstream that reflects request headers (an echo endpoint, a verbose error page) would hand
// the sidecar's credential to the agent. Every response body streams through this scrubber: each
// credential value is overwritten with "*" of the same length (Content-Length stays right), also
// when it straddles two chunks. Only a chunk's end that could begin a secret is held back.
import { Transform, type TransformCallback } from 'node:stream';

/** Values shorter than this are not scrubbed (too likely to match ordinary text). */
const MIN_SECRET = 8;

/** By credential headers object: upstream.ts hands out the same object until the Secret is read again. */
const secretsOf = new WeakMap<Record<string, string>, Buffer[]>();

export function secretValues(headers: Record<string, string>): Buffer[] {
  const known = secretsOf.get(headers);
  if (known) return known;
  const out: Buffer[] = [];
  for (const v of Object.values(headers)) {
    const bare = v.replace(/^(Bearer|Basic)\s+/i, '');
    for (const s of new Set([v, bare])) if (s.length >= MIN_SECRET) out.push(Buffer.from(s));
  }
  // Longest first: "Bearer x" is scrubbed whole before "x" alone.
  out.sort((a, b) => b.length - a.length);
  secretsOf.set(headers, out);
  return out;
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

/**
 * How many bytes at the end of `buf` could be the start of a secret (held back until the next
 * chunk decides). Candidates start where a secret's first byte occurs, so ordinary data holds back
 * nothing and a stream of small events (a watch) is never delayed.
 */
export function heldBack(buf: Buffer, secrets: readonly Buffer[]): number {
  let hold = 0;
  for (const s of secrets) {
    const from = Math.max(0, buf.length - (s.length - 1));
    for (let i = buf.indexOf(s[0]!, from); i >= 0 && i < buf.length; i = buf.indexOf(s[0]!, i + 1)) {
      const k = buf.length - i;
      if (k > hold && buf.subarray(i).equals(s.subarray(0, k))) {
        hold = k;
        break;
      }
    }
  }
  return hold;
}

export class Scrubber extends Transform {
  private tail: Buffer = Buffer.alloc(0);
  private readonly secrets: readonly Buffer[];
  hits = 0;

  constructor(secrets: readonly Buffer[]) {
    super();
    this.secrets = secrets;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (this.secrets.length === 0) {
      cb(null, chunk);
      return;
    }
    const buf = this.tail.length > 0 ? Buffer.concat([this.tail, chunk]) : Buffer.from(chunk);
    this.hits += scrubBuffer(buf, this.secrets);
    const cut = buf.length - heldBack(buf, this.secrets);
    this.tail = buf.subarray(cut);
    cb(null, cut > 0 ? buf.subarray(0, cut) : undefined);
  }

  override _flush(cb: TransformCallback): void {
    cb(null, this.tail.length > 0 ? this.tail : undefined);
  }
}

// Streams a body through while keeping what the recording needs: its length and SHA-256 over every
// byte, and a prefix up to the policy's cap. Nothing beyond the cap is held.
import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import type { HttpBody } from './record.ts';

/** SHA-256 of no bytes: a body that never came needs no hash object. */
const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
/** Reused: decode() without { stream } starts afresh every call. */
const UTF8 = new TextDecoder('utf-8', { fatal: true });

export class BodyCapture {
  private hash: Hash | undefined;
  private readonly kept: Buffer[] = [];
  private keptBytes = 0;
  bytes = 0;

  private readonly cap: number;

  constructor(cap: number) {
    this.cap = cap;
  }

  update(chunk: Buffer): void {
    this.bytes += chunk.length;
    this.hash ??= createHash('sha256');
    this.hash.update(chunk);
    if (this.keptBytes < this.cap) {
      const part = chunk.subarray(0, this.cap - this.keptBytes);
      this.kept.push(Buffer.from(part));
      this.keptBytes += part.length;
    }
  }

  /** The body for the recording; call once, after the last chunk. */
  summary(mimeType: string | undefined, masked?: string[]): HttpBody {
    const prefix = Buffer.concat(this.kept);
    const truncated = this.bytes > prefix.length;
    const body: HttpBody = { bytes: this.bytes, sha256: this.hash?.digest('hex') ?? EMPTY_SHA256, truncated };
    if (mimeType) body.mimeType = mimeType;
    if (prefix.length > 0) {
      const text = utf8(prefix, truncated);
      if (text !== undefined) body.text = text;
      else body.base64 = prefix.toString('base64');
    }
    if (masked && masked.length > 0) body.masked = masked;
    return body;
  }
}

/** The prefix as text when it is valid UTF-8 (a sequence cut by the cap is allowed at the end). */
function utf8(buf: Buffer, truncated: boolean): string | undefined {
  let end = buf.length;
  if (truncated) {
    // Drop an incomplete trailing sequence (at most 3 bytes).
    for (let back = 1; back <= Math.min(3, buf.length); back++) {
      const b = buf[buf.length - back]!;
      if ((b & 0xc0) === 0x80) continue;
      if (b >= 0xc0) {
        const need = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : 2;
        if (need > back) end = buf.length - back;
      }
      break;
    }
  }
  try {
    return UTF8.decode(buf.subarray(0, end));
  } catch {
    return undefined;
  }
}

/** A pass-through stream that feeds a BodyCapture. */
export function captureTransform(capture: BodyCapture): Transform {
  return new Transform({
    transform(chunk: Buffer, _enc, cb: TransformCallback) {
      capture.update(chunk);
      cb(null, chunk);
    },
  });
}

/**
 * The tap a request body streams through: it feeds the capture and, once the body has ended,
 * records the request (`record`). holdLast (durability strict): the body's last chunk is held until
 * that record is durable, so the upstream never has the whole request before its event is on disk.
 * A body cut short is recorded as far as it came.
 */
export function requestTap(
  capture: BodyCapture,
  record: () => Promise<void>,
  holdLast: boolean,
): { tap: Transform; recorded: Promise<void> } {
  let held: Buffer | undefined;
  let started: Promise<void> | undefined;
  const once = () => {
    started ??= record();
    return started;
  };
  let settle!: { resolve: () => void; reject: (err: Error) => void };
  const recorded = new Promise<void>((resolve, reject) => {
    settle = { resolve, reject };
  });
  recorded.catch(() => undefined);
  const tap = new Transform({
    transform(chunk: Buffer, _enc, cb: TransformCallback) {
      capture.update(chunk);
      if (!holdLast) {
        cb(null, chunk);
        return;
      }
      const out = held;
      held = chunk;
      cb(null, out);
    },
    flush(cb: TransformCallback) {
      once().then(
        () => {
          settle.resolve();
          cb(null, held);
        },
        (err: Error) => {
          settle.reject(err);
          cb(err);
        },
      );
    },
  });
  tap.once('close', () => {
    if (started) return;
    once().then(settle.resolve, settle.reject);
  });
  return { tap, recorded };
}

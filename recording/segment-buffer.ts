// The open segment of a session: event lines (JSON + '\n') in fixed 64 KiB chunks taken from a
// shared pool and given back once the sealed segment is compressed. Reusing the same chunks keeps
// the C heap from fragmenting under a steady stream of segments (flat RSS however long a session).
const CHUNK = 64 * 1024;
const POOL_MAX_CHUNKS = 128; // 8 MiB kept for reuse at most (two 4 MiB segments)
const NEWLINE = 0x0a;

const pool: Buffer[] = [];

function takeChunk(): Buffer {
  return pool.pop() ?? Buffer.allocUnsafeSlow(CHUNK);
}

/** Gives chunks of a sealed segment back for reuse once they are compressed. */
export function recycleChunks(chunks: readonly Buffer[]): void {
  for (const c of chunks) {
    if (pool.length >= POOL_MAX_CHUNKS) return;
    if (c.buffer.byteLength === CHUNK && c.byteOffset === 0) pool.push(Buffer.from(c.buffer, 0, CHUNK));
  }
}

export class SegmentBuffer {
  private chunks: Buffer[] = [];
  private current: Buffer | undefined;
  private offset = 0;
  length = 0;

  private nextChunk(): void {
    if (this.current) this.chunks.push(this.current.subarray(0, this.offset));
    this.current = takeChunk();
    this.offset = 0;
  }

  /** Appends src[start, end) followed by a newline. */
  appendLine(src: Buffer, start: number, end: number): void {
    let from = start;
    while (from < end) {
      if (!this.current || this.offset === this.current.length) this.nextChunk();
      const cur = this.current!;
      const n = Math.min(end - from, cur.length - this.offset);
      src.copy(cur, this.offset, from, from + n);
      this.offset += n;
      from += n;
    }
    if (!this.current || this.offset === this.current.length) this.nextChunk();
    this.current![this.offset++] = NEWLINE;
    this.length += end - start + 1;
  }

  /** All bytes so far, as the list of filled chunks; the buffer starts empty again. */
  take(): Buffer[] {
    const parts = this.chunks;
    if (this.current) parts.push(this.current.subarray(0, this.offset));
    this.chunks = [];
    this.current = undefined;
    this.offset = 0;
    this.length = 0;
    return parts;
  }
}

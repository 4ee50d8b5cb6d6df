// The open segment of a session: event lines (JSON + '\n') in a list of chunks that grow from
// 16 KiB to 1 MiB, so a quiet session costs little and a busy one does few allocations.
const FIRST_CHUNK = 16 * 1024;
const MAX_CHUNK = 1024 * 1024;
const NEWLINE = 0x0a;

export class SegmentBuffer {
  private chunks: Buffer[] = [];
  private current: Buffer | undefined;
  private offset = 0;
  length = 0;

  private nextChunk(need: number): void {
    if (this.current) this.chunks.push(this.current.subarray(0, this.offset));
    const size = Math.min(MAX_CHUNK, FIRST_CHUNK << Math.min(this.chunks.length, 6));
    this.current = Buffer.allocUnsafeSlow(Math.max(size, Math.min(need, MAX_CHUNK)));
    this.offset = 0;
  }

  /** Appends src[start, end) followed by a newline. */
  appendLine(src: Buffer, start: number, end: number): void {
    let from = start;
    while (from < end) {
      if (!this.current || this.offset === this.current.length) this.nextChunk(end - from + 1);
      const cur = this.current!;
      const n = Math.min(end - from, cur.length - this.offset);
      src.copy(cur, this.offset, from, from + n);
      this.offset += n;
      from += n;
    }
    if (!this.current || this.offset === this.current.length) this.nextChunk(1);
    this.current![this.offset++] = NEWLINE;
    this.length += end - start + 1;
  }

  /** All bytes so far as one Buffer; the buffer starts empty again. */
  take(): Buffer {
    const parts = this.chunks;
    if (this.current) parts.push(this.current.subarray(0, this.offset));
    const out = parts.length === 1 ? parts[0]! : Buffer.concat(parts, this.length);
    this.chunks = [];
    this.current = undefined;
    this.offset = 0;
    this.length = 0;
    return out;
  }
}

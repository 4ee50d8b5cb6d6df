// The spool's write-ahead journal: one append-only file shared by every session of the recorder, so
// one durable write covers every event waiting at that moment (group commit). Local to the node, never
// uploaded; after a crash it is replayed to rebuild what was not sealed yet.
//
// The file is opened with O_DSYNC, so a write returns once its bytes are durable: a group commit is
// one write in libuv's thread pool instead of a write and an fdatasync (half the thread-pool round
// trips and main-thread callbacks per group, which the relay pays for at every statement).
//
// File: 8-byte magic "CHPJRNL1", then records:
//   u32 LE body length | u32 LE CRC-32 of body | body = u8 session-id length | session id (ASCII) | event line (UTF-8 JSON)
import { closeSync, constants, write as fdWrite, openSync, readSync } from 'node:fs';
import { type FileHandle, mkdir, open, readdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import type { SegmentBuffer } from './segment-buffer.ts';
import { fsyncDir } from './stores/file-store.ts';

export const JOURNAL_MAGIC = Buffer.from('CHPJRNL1', 'ascii');
const RECORD_HEADER = 8;
const MAX_RECORD = 256 * 1024 * 1024;
const INITIAL_BUFFER = 256 * 1024;
const KEEP_BUFFER = 8 * 1024 * 1024;

interface Deferred {
  promise: Promise<void>;
  resolve: () => void;
  reject: (err: unknown) => void;
}

function deferred(): Deferred {
  let resolve!: () => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // A batch nobody awaits (e.g. control records) must not become an unhandled rejection.
  promise.catch(() => {});
  return { promise, resolve, reject };
}

export function journalFileName(no: number): string {
  return `${String(no).padStart(8, '0')}.wal`;
}

export async function listJournalFiles(dir: string): Promise<number[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  return names
    .map((n) => /^(\d{8})\.wal$/.exec(n)?.[1])
    .filter((n): n is string => n !== undefined)
    .map(Number)
    .sort((a, b) => a - b);
}

/** Encodes a session id as the record body's prefix (u8 length + ASCII). */
export function sessionTag(sessionId: string): Buffer {
  const id = Buffer.from(sessionId, 'ascii');
  if (id.length > 255) throw new Error('session id too long');
  return Buffer.concat([Buffer.from([id.length]), id]);
}

/** Writes buf[0, length) at `position`; with O_DSYNC it is durable when this resolves. */
function writeFully(fd: number, buf: Buffer, length: number, position: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let off = 0;
    const step = (err: NodeJS.ErrnoException | null, written: number): void => {
      if (err) {
        reject(err);
        return;
      }
      off += written;
      if (off >= length) resolve();
      else fdWrite(fd, buf, off, length - off, position + off, step);
    };
    fdWrite(fd, buf, 0, length, position, step);
  });
}

export class Journal {
  readonly dir: string;
  private readonly rotateBytes: number;
  private fh!: FileHandle;
  fileNo = 0;
  private fileSize = 0;
  private active: Buffer = Buffer.allocUnsafeSlow(INITIAL_BUFFER);
  private activeLength = 0;
  private spare: Buffer | undefined;
  private batch: Deferred | undefined;
  private flushing = false;
  private flushScheduled = false;
  private failure: unknown;
  /** Bytes of records written since open (for stats). */
  writtenBytes = 0;
  commits = 0;

  private constructor(dir: string, rotateBytes: number) {
    this.dir = dir;
    this.rotateBytes = rotateBytes;
  }

  /** Opens a fresh journal file numbered after every existing one (those are recovery input). */
  static async open(dir: string, rotateBytes: number): Promise<Journal> {
    await mkdir(dir, { recursive: true });
    const existing = await listJournalFiles(dir);
    const j = new Journal(dir, rotateBytes);
    await j.openFile((existing.at(-1) ?? 0) + 1);
    return j;
  }

  private async openFile(no: number): Promise<void> {
    const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_DSYNC;
    const fh = await open(join(this.dir, journalFileName(no)), flags, 0o600);
    await fh.write(JOURNAL_MAGIC, 0, JOURNAL_MAGIC.length, 0);
    await fsyncDir(this.dir);
    this.fh = fh;
    this.fileNo = no;
    this.fileSize = JOURNAL_MAGIC.length;
  }

  private ensure(extra: number): void {
    const need = this.activeLength + extra;
    if (need <= this.active.length) return;
    const grown = Buffer.allocUnsafeSlow(Math.max(need, this.active.length * 2));
    this.active.copy(grown, 0, 0, this.activeLength);
    this.active = grown;
  }

  /**
   * Adds one record to the current group and copies the event line into `sink` (the session's
   * open segment). The line is `head + body + "}"`, written in pieces so no joined string is built.
   * Returns the record's size in the journal. Call commit() to wait for it.
   */
  append(tag: Buffer, head: string, body: string, sink: SegmentBuffer): number {
    if (this.failure) throw this.failure;
    const chars = head.length + body.length + 1;
    const maxLine = chars > 65536 ? Buffer.byteLength(head) + Buffer.byteLength(body) + 1 : chars * 3;
    this.ensure(RECORD_HEADER + tag.length + maxLine);
    const buf = this.active;
    const start = this.activeLength;
    const bodyStart = start + RECORD_HEADER;
    tag.copy(buf, bodyStart);
    const lineStart = bodyStart + tag.length;
    let end = lineStart + buf.write(head, lineStart, 'utf8');
    end += buf.write(body, end, 'utf8');
    buf[end++] = 0x7d; // '}'
    if (end - bodyStart > MAX_RECORD)
      throw new RangeError(`event too large for the journal (${end - bodyStart} bytes)`);
    buf.writeUInt32LE(end - bodyStart, start);
    buf.writeUInt32LE(crc32(buf.subarray(bodyStart, end)), start + 4);
    this.activeLength = end;
    sink.appendLine(buf, lineStart, end);
    return end - start;
  }

  /** Resolves once every record appended so far is on disk (one durable write per group). */
  commit(): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (!this.batch) this.batch = deferred();
    this.schedule();
    return this.batch.promise;
  }

  private schedule(): void {
    if (this.flushing || this.flushScheduled) return;
    this.flushScheduled = true;
    // setImmediate: every append made in this turn of the event loop joins the group.
    setImmediate(() => {
      this.flushScheduled = false;
      void this.flush();
    });
  }

  private async flush(): Promise<void> {
    if (this.flushing || !this.batch) return;
    this.flushing = true;
    const batch = this.batch;
    this.batch = undefined;
    const buf = this.active;
    const length = this.activeLength;
    this.active = this.spare ?? Buffer.allocUnsafeSlow(INITIAL_BUFFER);
    this.spare = undefined;
    this.activeLength = 0;
    try {
      await writeFully(this.fh.fd, buf, length, this.fileSize);
      this.fileSize += length;
      this.writtenBytes += length;
      this.commits++;
      if (this.fileSize >= this.rotateBytes) {
        await this.fh.close();
        await this.openFile(this.fileNo + 1);
      }
      batch.resolve();
    } catch (err) {
      this.failure = err;
      batch.reject(err);
      (this.batch as Deferred | undefined)?.reject(err);
      this.batch = undefined;
    }
    if (buf.length <= KEEP_BUFFER) this.spare = buf;
    this.flushing = false;
    if (this.batch) void this.flush();
  }

  /** Waits for pending records, then closes the file. */
  async close(): Promise<void> {
    if (this.batch) await this.commit().catch(() => {});
    while (this.flushing) await new Promise((r) => setImmediate(r));
    await this.fh.close().catch(() => {});
  }

  /** Deletes journal files numbered below `no` (never the current one). */
  async deleteBefore(no: number): Promise<void> {
    const limit = Math.min(no, this.fileNo);
    let removed = false;
    for (const f of await listJournalFiles(this.dir)) {
      if (f >= limit) break;
      await unlink(join(this.dir, journalFileName(f))).catch(() => {});
      removed = true;
    }
    if (removed) await fsyncDir(this.dir);
  }
}

export type JournalEntry =
  | { type: 'record'; sessionId: string; seq: number; line: Buffer }
  | { type: 'torn'; sessionId?: string; bytes: number; offset: number; why: string };

const SEQ_PREFIX = Buffer.from('{"seq":', 'ascii');

function tryTag(body: Buffer): string | undefined {
  if (body.length < 1) return undefined;
  const n = body[0]!;
  if (n === 0 || body.length < 1 + n) return undefined;
  const id = body.subarray(1, 1 + n).toString('latin1');
  return /^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(id) ? id : undefined;
}

function parseSeq(line: Buffer): number | undefined {
  if (!line.subarray(0, SEQ_PREFIX.length).equals(SEQ_PREFIX)) return undefined;
  let seq = 0;
  let i = SEQ_PREFIX.length;
  for (; i < line.length && i < SEQ_PREFIX.length + 16; i++) {
    const c = line[i]!;
    if (c < 0x30 || c > 0x39) break;
    seq = seq * 10 + (c - 0x30);
  }
  return i > SEQ_PREFIX.length && line[i] === 0x2c ? seq : undefined;
}

/**
 * Reads one journal file record by record with a small buffer. A record cut short (crash in the
 * middle of a write) or failing its CRC ends the file: the rest is reported as one torn entry.
 */
export function* readJournalFile(path: string, chunkSize = 1024 * 1024): Generator<JournalEntry> {
  const fd = openSync(path, 'r');
  try {
    let buf = Buffer.allocUnsafe(chunkSize);
    let start = 0; // first unread byte in buf
    let end = 0; // end of valid bytes in buf
    let filePos = 0; // file offset of buf[0]
    let eof = false;
    /** Makes buf[start, start + n) available if the file has it; false at end of file. */
    const need = (n: number): boolean => {
      if (start + n > buf.length) {
        const target = n > buf.length ? Buffer.allocUnsafe(Math.max(n, buf.length * 2)) : buf;
        buf.copy(target, 0, start, end);
        buf = target;
        end -= start;
        filePos += start;
        start = 0;
      }
      while (end - start < n && !eof) {
        const got = readSync(fd, buf, end, buf.length - end, filePos + end);
        if (got === 0) eof = true;
        end += got;
      }
      return end - start >= n;
    };
    const offset = () => filePos + start;
    if (!need(JOURNAL_MAGIC.length) || !buf.subarray(0, JOURNAL_MAGIC.length).equals(JOURNAL_MAGIC)) {
      if (end > 0) yield { type: 'torn', bytes: restOfFile(fd, 0), offset: 0, why: 'bad journal header' };
      return;
    }
    start += JOURNAL_MAGIC.length;
    for (;;) {
      if (!need(RECORD_HEADER)) {
        if (end > start)
          yield { type: 'torn', bytes: end - start, offset: offset(), why: 'record header cut short' };
        return;
      }
      const bodyLength = buf.readUInt32LE(start);
      const crc = buf.readUInt32LE(start + 4);
      if (bodyLength === 0 || bodyLength > MAX_RECORD) {
        yield {
          type: 'torn',
          bytes: restOfFile(fd, offset()),
          offset: offset(),
          why: `implausible record length ${bodyLength}`,
        };
        return;
      }
      if (!need(RECORD_HEADER + bodyLength)) {
        const sessionId = tryTag(buf.subarray(start + RECORD_HEADER, end));
        yield {
          type: 'torn',
          ...(sessionId ? { sessionId } : {}),
          bytes: end - start,
          offset: offset(),
          why: `record cut short (${end - start - RECORD_HEADER} of ${bodyLength} body bytes)`,
        };
        return;
      }
      const body = buf.subarray(start + RECORD_HEADER, start + RECORD_HEADER + bodyLength);
      const sessionId = tryTag(body);
      const line = sessionId ? Buffer.from(body.subarray(1 + body[0]!)) : undefined;
      const seq = line ? parseSeq(line) : undefined;
      if (crc32(body) !== crc || !sessionId || !line || seq === undefined) {
        yield {
          type: 'torn',
          ...(sessionId ? { sessionId } : {}),
          bytes: restOfFile(fd, offset()),
          offset: offset(),
          why: crc32(body) !== crc ? 'record checksum mismatch' : 'record is not an event line',
        };
        return;
      }
      yield { type: 'record', sessionId, seq, line };
      start += RECORD_HEADER + bodyLength;
    }
  } finally {
    closeSync(fd);
  }
}

function restOfFile(fd: number, offset: number): number {
  const probe = Buffer.allocUnsafe(64 * 1024);
  let total = 0;
  for (;;) {
    const n = readSync(fd, probe, 0, probe.length, offset + total);
    if (n === 0) return total;
    total += n;
  }
}

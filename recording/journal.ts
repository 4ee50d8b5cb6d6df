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
import { closeSync, constants, write as fdWrite, fstatSync, openSync, readSync } from 'node:fs';
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
  /** The pending group's window timer (undefined: none, or the group goes at the end of the turn). */
  private flushTimer: NodeJS.Timeout | undefined;
  /** A record that someone waits on arrived while a write was in flight: no window for the next group. */
  private urgentWaiting = false;
  private failure: unknown;
  /** Bytes of records written since open (for stats). */
  writtenBytes = 0;
  commits = 0;

  private readonly commitWindowMs: number;

  private constructor(dir: string, rotateBytes: number, commitWindowMs: number) {
    this.dir = dir;
    this.rotateBytes = rotateBytes;
    this.commitWindowMs = commitWindowMs;
  }

  /**
   * Opens a fresh journal file numbered after every existing one (those are recovery input).
   * commitWindowMs: how long a group stays open for more records once its first one arrives (0:
   * until the end of this turn of the event loop).
   */
  static async open(dir: string, rotateBytes: number, commitWindowMs = 0): Promise<Journal> {
    await mkdir(dir, { recursive: true });
    const existing = await listJournalFiles(dir);
    const j = new Journal(dir, rotateBytes, commitWindowMs);
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

  /**
   * Resolves once every record appended so far is on disk (one durable write per group). urgent:
   * the caller waits on it before going on (recording.durability strict), so the group is written
   * at the end of this turn instead of after the commit window; records that did not need to wait
   * (a statement's result) ride along in that write instead of paying one of their own.
   */
  commit(urgent = false): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (!this.batch) this.batch = deferred();
    this.schedule(urgent);
    return this.batch.promise;
  }

  private readonly runFlush = (): void => {
    this.flushScheduled = false;
    this.flushTimer = undefined;
    void this.flush();
  };

  private schedule(urgent: boolean): void {
    if (this.flushing) {
      if (urgent) this.urgentWaiting = true;
      return;
    }
    if (this.flushScheduled) {
      // A window is open: an urgent record closes it now.
      if (urgent && this.flushTimer) {
        clearTimeout(this.flushTimer);
        this.flushTimer = undefined;
        setImmediate(this.runFlush);
      }
      return;
    }
    this.flushScheduled = true;
    // setImmediate: every append made in this turn of the event loop joins the group. A window
    // also gathers the turns that follow: an agent's statement and its result arrive in two turns,
    // and at a few statements per second each would otherwise pay a synchronous disk write.
    if (this.commitWindowMs > 0 && !urgent) this.flushTimer = setTimeout(this.runFlush, this.commitWindowMs);
    else setImmediate(this.runFlush);
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
    // Records that came in meanwhile start the next group, with its own window (none if urgent).
    const urgent = this.urgentWaiting;
    this.urgentWaiting = false;
    if (this.batch) this.schedule(urgent);
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

export type JournalEntry = { type: 'record'; sessionId: string; seq: number; line: Buffer } | TornEntry;

/**
 * A stretch of a journal file that holds no readable record: a torn tail (the crash cut the last
 * write) or, in the middle of a file, bytes skipped until the next record that validates.
 */
export interface TornEntry {
  type: 'torn';
  /**
   * The session the stretch most likely belonged to: the session of the neighbouring records when
   * both belong to it and seqs are missing between them, else the session id still readable in the
   * damaged record (a guess, only used to attribute a loss at a session's end).
   */
  sessionId?: string;
  bytes: number;
  offset: number;
  why: string;
  /** Mid-file: reading went on at offset + bytes with a record that validates. */
  resumed: boolean;
  /** Seqs the stretch held, when the records on both sides belong to the same session. */
  fromSeq?: number;
  toSeq?: number;
}

const SEQ_PREFIX = Buffer.from('{"seq":', 'ascii');
const MAX_TAG = 255;
const idChar = (c: number) =>
  (c >= 0x30 && c <= 0x39) ||
  (c >= 0x41 && c <= 0x5a) ||
  (c >= 0x61 && c <= 0x7a) ||
  c === 0x2e ||
  c === 0x5f ||
  c === 0x2d;

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

interface ValidRecord {
  type: 'record';
  sessionId: string;
  seq: number;
  line: Buffer;
}

/** A record body that passed its CRC and reads as an event line of a session, else undefined. */
function validBody(body: Buffer, crc: number): ValidRecord | undefined {
  if (crc32(body) !== crc) return undefined;
  const sessionId = tryTag(body);
  if (!sessionId) return undefined;
  const line = Buffer.from(body.subarray(1 + body[0]!));
  const seq = parseSeq(line);
  return seq === undefined ? undefined : { type: 'record', sessionId, seq, line };
}

function readAt(fd: number, pos: number, length: number): Buffer {
  const out = Buffer.allocUnsafe(length);
  let got = 0;
  while (got < length) {
    const n = readSync(fd, out, got, length - got, pos + got);
    if (n === 0) break;
    got += n;
  }
  return got === length ? out : out.subarray(0, got);
}

/**
 * Finds the first offset at or after `from` where a whole record validates: plausible length inside
 * the file, CRC, session tag, `{"seq":N,` line start, and a seq above any the file already gave for
 * that session. Candidates are found by the `{"seq":` that starts every event line, so the scan
 * costs one pass over the bytes plus a CRC per candidate.
 */
function resync(
  fd: number,
  from: number,
  fileSize: number,
  lastSeqs: ReadonlyMap<string, number>,
): number | undefined {
  const chunk = 1024 * 1024;
  const overlap = SEQ_PREFIX.length - 1;
  // The smallest record start whose line can begin at p is p - RECORD_HEADER - 1 - MAX_TAG.
  for (let winStart = from; winStart < fileSize; winStart += chunk) {
    const win = readAt(fd, winStart, Math.min(chunk + overlap, fileSize - winStart));
    for (let i = win.indexOf(SEQ_PREFIX); i >= 0 && i < chunk; i = win.indexOf(SEQ_PREFIX, i + 1)) {
      const p = winStart + i;
      const lowest = Math.max(from, p - RECORD_HEADER - 1 - MAX_TAG);
      if (p - lowest < RECORD_HEADER + 2) continue;
      const pre = readAt(fd, lowest, p - lowest);
      // Walk back over id characters; the byte before them must be their count (the tag length).
      for (let n = 1; n <= MAX_TAG && n < pre.length; n++) {
        const at = pre.length - n;
        if (!idChar(pre[at]!)) break;
        const lenAt = at - 1;
        if (lenAt < RECORD_HEADER) break;
        if (pre[lenAt] !== n) continue;
        const start = lowest + lenAt - RECORD_HEADER;
        const bodyLength = pre.readUInt32LE(lenAt - RECORD_HEADER);
        if (bodyLength <= 1 + n + SEQ_PREFIX.length || bodyLength > MAX_RECORD) continue;
        if (start + RECORD_HEADER + bodyLength > fileSize) continue;
        const crc = pre.readUInt32LE(lenAt - RECORD_HEADER + 4);
        const rec = validBody(readAt(fd, start + RECORD_HEADER, bodyLength), crc);
        if (!rec) continue;
        if (rec.seq <= (lastSeqs.get(rec.sessionId) ?? -1)) continue;
        return start;
      }
    }
  }
  return undefined;
}

/**
 * Reads one journal file record by record with a small buffer. A record that does not validate
 * (bad CRC, implausible or wrong length, not an event line) is skipped: reading resumes at the next
 * offset where a whole record validates, and the skipped bytes are reported as one torn entry. When
 * no record validates after it, the rest of the file is the torn tail of a crash.
 */
export function* readJournalFile(path: string, chunkSize = 1024 * 1024): Generator<JournalEntry> {
  const fd = openSync(path, 'r');
  try {
    const fileSize = fstatSync(fd).size;
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
    const seekTo = (pos: number) => {
      filePos = pos;
      start = 0;
      end = 0;
      eof = false;
    };
    const lastSeqs = new Map<string, number>();
    let previousSession: string | undefined;
    let previousSeq = -1;
    /** The entry for a stretch that does not read, and where reading goes on (undefined: the end). */
    const skip = (
      at: number,
      why: string,
      guess: string | undefined,
      from = at + 1,
    ): [TornEntry, number | undefined] => {
      if (previousSession !== undefined) lastSeqs.set(previousSession, previousSeq);
      const next = resync(fd, from, fileSize, lastSeqs);
      const torn: TornEntry = {
        type: 'torn',
        bytes: (next ?? fileSize) - at,
        offset: at,
        why: next === undefined ? why : `${why}; resynchronised at offset ${next}`,
        resumed: next !== undefined,
      };
      if (next !== undefined && previousSession !== undefined) {
        const after = validAt(fd, next);
        // Same session on both sides with seqs missing between: those seqs were in the stretch.
        if (after?.sessionId === previousSession && after.seq > previousSeq + 1) {
          torn.sessionId = after.sessionId;
          torn.fromSeq = previousSeq + 1;
          torn.toSeq = after.seq - 1;
        }
      }
      if (!torn.sessionId && guess) torn.sessionId = guess;
      return [torn, next];
    };
    if (!need(JOURNAL_MAGIC.length) || !buf.subarray(0, JOURNAL_MAGIC.length).equals(JOURNAL_MAGIC)) {
      if (fileSize === 0) return;
      // A damaged magic must not cost the records behind it; a file that is no journal has none.
      const [torn, next] = skip(0, 'bad journal header', undefined, 0);
      yield torn;
      if (next === undefined) return;
      seekTo(next);
    } else {
      start += JOURNAL_MAGIC.length;
    }
    for (;;) {
      if (!need(RECORD_HEADER)) {
        if (end > start)
          yield {
            type: 'torn',
            bytes: end - start,
            offset: offset(),
            why: 'record header cut short',
            resumed: false,
          };
        return;
      }
      const at = offset();
      const bodyLength = buf.readUInt32LE(start);
      const crc = buf.readUInt32LE(start + 4);
      let problem: string | undefined;
      let guess: string | undefined;
      if (bodyLength === 0 || bodyLength > MAX_RECORD) {
        need(RECORD_HEADER + 1 + MAX_TAG);
        guess = tryTag(buf.subarray(start + RECORD_HEADER, end));
        problem = `implausible record length ${bodyLength}`;
      } else if (!need(RECORD_HEADER + bodyLength)) {
        guess = tryTag(buf.subarray(start + RECORD_HEADER, end));
        problem = `record cut short (${end - start - RECORD_HEADER} of ${bodyLength} body bytes)`;
      } else {
        const body = buf.subarray(start + RECORD_HEADER, start + RECORD_HEADER + bodyLength);
        const rec = validBody(body, crc);
        if (rec) {
          // The last seq per session is kept for resync; noted when the session changes (cheap).
          if (previousSession !== undefined && previousSession !== rec.sessionId)
            lastSeqs.set(previousSession, previousSeq);
          previousSession = rec.sessionId;
          previousSeq = rec.seq;
          start += RECORD_HEADER + bodyLength;
          yield rec;
          continue;
        }
        guess = tryTag(body);
        problem = crc32(body) !== crc ? 'record checksum mismatch' : 'record is not an event line';
      }
      const [torn, next] = skip(at, problem, guess);
      yield torn;
      if (next === undefined) return;
      seekTo(next);
    }
  } finally {
    closeSync(fd);
  }
}

/** The record at `pos`, when it validates (used to name the neighbour after a skipped stretch). */
function validAt(fd: number, pos: number): ValidRecord | undefined {
  const head = readAt(fd, pos, RECORD_HEADER);
  if (head.length < RECORD_HEADER) return undefined;
  const bodyLength = head.readUInt32LE(0);
  if (bodyLength === 0 || bodyLength > MAX_RECORD) return undefined;
  const body = readAt(fd, pos + RECORD_HEADER, bodyLength);
  return body.length === bodyLength ? validBody(body, head.readUInt32LE(4)) : undefined;
}

// The sftp subsystem, relayed packet by packet: requests from the agent are decoded, paths checked
// against `pathPattern` (absolute and lexically normalised, so `..` cannot dodge a rule), refused
// requests answered with SSH_FX_PERMISSION_DENIED without reaching the host; replies are observed
// to record each operation with its outcome, and whole files moved through a handle with their size
// and SHA-256 (streamed, never held in memory). Symlink and hard-link creation is refused: a link
// would let a later allowed path name a file a rule forbids.
import { createHash, type Hash } from 'node:crypto';
import { posix } from 'node:path';

export const FXP = {
  INIT: 1,
  VERSION: 2,
  OPEN: 3,
  CLOSE: 4,
  READ: 5,
  WRITE: 6,
  LSTAT: 7,
  FSTAT: 8,
  SETSTAT: 9,
  FSETSTAT: 10,
  OPENDIR: 11,
  READDIR: 12,
  REMOVE: 13,
  MKDIR: 14,
  RMDIR: 15,
  REALPATH: 16,
  STAT: 17,
  RENAME: 18,
  READLINK: 19,
  SYMLINK: 20,
  STATUS: 101,
  HANDLE: 102,
  DATA: 103,
  NAME: 104,
  ATTRS: 105,
  EXTENDED: 200,
  EXTENDED_REPLY: 201,
} as const;

const FX_OK = 0;
const FX_PERMISSION_DENIED = 3;
const FX_OP_UNSUPPORTED = 8;
const STATUS_NAMES = [
  'ok',
  'eof',
  'no such file',
  'permission denied',
  'failure',
  'bad message',
  'no connection',
  'connection lost',
  'unsupported',
];
/** Largest sftp packet accepted from either side (OpenSSH's own limit is 256 KiB). */
export const MAX_PACKET = 256 * 1024 + 1024;
export const MAX_PATH = 4096;

const pflagWrite = 0x02;

/** A file operation as recorded (terminal.file). */
export interface FileOp {
  op:
    | 'open'
    | 'read'
    | 'write'
    | 'close'
    | 'remove'
    | 'rename'
    | 'mkdir'
    | 'rmdir'
    | 'setstat'
    | 'upload'
    | 'download';
  path: string;
  toPath?: string;
  bytes?: number;
  sha256?: string;
  status?: string;
}

interface Transfer {
  hash: Hash;
  next: number;
  whole: boolean;
  bytes: number;
}

interface OpenFile {
  path: string;
  write: boolean;
  written: Transfer | undefined;
  read: Transfer | undefined;
}

interface Pending {
  type: number;
  op?: FileOp;
  /** OPEN: the file being opened. */
  open?: { path: string; write: boolean };
  /** READ: the handle and offset asked for. */
  read?: { handle: string; offset: number };
  close?: string;
}

/** What the relay must do with one agent packet. */
export type RequestVerdict =
  | { forward: true }
  /** Refused before any check (unsupported, too long): answer at once. */
  | { forward: false; reply: Buffer; rule: string; reason: string; paths: string[] }
  /** Needs the path guard: every path must pass. */
  | { forward: 'check'; paths: string[] };

class Reader {
  pos: number;
  readonly buf: Buffer;
  constructor(buf: Buffer, start: number) {
    this.buf = buf;
    this.pos = start;
  }
  u32(): number {
    const v = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }
  u64(): number {
    const hi = this.buf.readUInt32BE(this.pos);
    const lo = this.buf.readUInt32BE(this.pos + 4);
    this.pos += 8;
    return hi * 2 ** 32 + lo;
  }
  bytes(): Buffer {
    const n = this.u32();
    if (this.pos + n > this.buf.length) throw new RangeError('string past the packet end');
    const v = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return v;
  }
  string(): string {
    return this.bytes().toString('utf8');
  }
}

/**
 * Splits a byte stream into sftp packets (length-prefixed). A packet inside one chunk is a view of
 * it; only a packet cut across chunks is copied, once (a 32 KiB WRITE always is: it is a little
 * larger than an SSH packet).
 */
export class PacketFramer {
  /** The start of a packet cut by the end of the last chunk. */
  private parts: Buffer[] = [];
  private partsLen = 0;
  error: string | undefined;

  private lengthOk(len: number): boolean {
    if (len >= 1 && len <= MAX_PACKET) return true;
    this.error = `sftp packet of ${len} bytes`;
    return false;
  }

  push(chunk: Buffer): Buffer[] {
    const out: Buffer[] = [];
    let c = chunk;
    if (this.partsLen > 0) {
      if (this.partsLen < 4) {
        const take = Math.min(4 - this.partsLen, c.length);
        this.parts.push(c.subarray(0, take));
        this.partsLen += take;
        c = c.subarray(take);
        if (this.partsLen < 4) return out;
        this.parts = [Buffer.concat(this.parts, this.partsLen)];
      }
      const len = this.parts[0]!.readUInt32BE(0);
      if (!this.lengthOk(len)) return out;
      const need = 4 + len - this.partsLen;
      if (c.length < need) {
        this.parts.push(c);
        this.partsLen += c.length;
        return out;
      }
      this.parts.push(c.subarray(0, need));
      out.push(Buffer.concat(this.parts, 4 + len));
      this.parts = [];
      this.partsLen = 0;
      c = c.subarray(need);
    }
    let pos = 0;
    while (c.length - pos >= 4) {
      const len = c.readUInt32BE(pos);
      if (!this.lengthOk(len)) return out;
      if (c.length - pos < 4 + len) break;
      out.push(c.subarray(pos, pos + 4 + len));
      pos += 4 + len;
    }
    if (pos < c.length) {
      this.parts = [c.subarray(pos)];
      this.partsLen = c.length - pos;
    }
    return out;
  }
}

export function statusPacket(id: number, code: number, message: string): Buffer {
  const msg = Buffer.from(message, 'utf8');
  const b = Buffer.alloc(4 + 1 + 4 + 4 + 4 + msg.length + 4);
  let p = b.writeUInt32BE(b.length - 4, 0);
  p = b.writeUInt8(FXP.STATUS, p);
  p = b.writeUInt32BE(id, p);
  p = b.writeUInt32BE(code, p);
  p = b.writeUInt32BE(msg.length, p);
  p += msg.copy(b, p);
  b.writeUInt32BE(0, p);
  return b;
}

function newTransfer(): Transfer {
  return { hash: createHash('sha256'), next: 0, whole: true, bytes: 0 };
}

function advance(t: Transfer, offset: number, data: Buffer): void {
  t.bytes += data.length;
  if (!t.whole) return;
  if (offset !== t.next) {
    t.whole = false;
    return;
  }
  t.hash.update(data);
  t.next += data.length;
}

/** Decodes one sftp channel; the relay asks it about each packet. */
export class SftpObserver {
  private readonly pending = new Map<number, Pending>();
  private readonly files = new Map<string, OpenFile>();
  /** The agent's starting directory upstream (relative paths are resolved against it). */
  home = '/';

  /** Absolute, lexically normalised (`..` folded; symlinks are not followed). */
  resolve(path: string): string {
    return posix.normalize(posix.isAbsolute(path) ? path : posix.join(this.home, path));
  }

  /** An agent packet: what to do with it. Records what it asked for, to match the reply. */
  request(packet: Buffer): RequestVerdict {
    const type = packet[4]!;
    if (type === FXP.INIT) return { forward: true };
    const r = new Reader(packet, 5);
    let id = 0;
    try {
      id = r.u32();
      const deny = (rule: string, reason: string, paths: string[]): RequestVerdict => ({
        forward: false,
        reply: statusPacket(id, rule === 'sftp-links' ? FX_OP_UNSUPPORTED : FX_PERMISSION_DENIED, reason),
        rule,
        reason,
        paths,
      });
      const path = (): string => {
        const p = r.string();
        if (p.length > MAX_PATH || p.includes('\0')) throw new PathError(p);
        return this.resolve(p);
      };
      switch (type) {
        case FXP.OPEN: {
          const p = path();
          const pflags = r.u32();
          const write = (pflags & pflagWrite) !== 0;
          this.pending.set(id, { type, open: { path: p, write } });
          return { forward: 'check', paths: [p] };
        }
        case FXP.CLOSE: {
          const handle = r.bytes().toString('hex');
          this.pending.set(id, { type, close: handle });
          return { forward: true };
        }
        case FXP.READ: {
          const handle = r.bytes().toString('hex');
          const offset = r.u64();
          this.pending.set(id, { type, read: { handle, offset } });
          return { forward: true };
        }
        case FXP.WRITE: {
          const handle = r.bytes().toString('hex');
          const offset = r.u64();
          const data = r.bytes();
          const f = this.files.get(handle);
          if (f) {
            f.written ??= newTransfer();
            advance(f.written, offset, data);
          }
          return { forward: true };
        }
        case FXP.REMOVE:
        case FXP.MKDIR:
        case FXP.RMDIR:
        case FXP.SETSTAT: {
          const p = path();
          const op = ({ 13: 'remove', 14: 'mkdir', 15: 'rmdir', 9: 'setstat' } as const)[type];
          this.pending.set(id, { type, op: { op, path: p } });
          return { forward: 'check', paths: [p] };
        }
        case FXP.OPENDIR:
        case FXP.STAT:
        case FXP.LSTAT:
        case FXP.READLINK: {
          const p = path();
          return { forward: 'check', paths: [p] };
        }
        case FXP.RENAME: {
          const from = path();
          const to = path();
          this.pending.set(id, { type, op: { op: 'rename', path: from, toPath: to } });
          return { forward: 'check', paths: [from, to] };
        }
        case FXP.SYMLINK:
          return deny('sftp-links', 'chaperone: creating links over sftp is not allowed', []);
        case FXP.EXTENDED: {
          const name = r.string();
          if (name === 'posix-rename@openssh.com') {
            const from = path();
            const to = path();
            this.pending.set(id, { type, op: { op: 'rename', path: from, toPath: to } });
            return { forward: 'check', paths: [from, to] };
          }
          if (name === 'hardlink@openssh.com')
            return deny('sftp-links', 'chaperone: creating links over sftp is not allowed', []);
          if (
            name === 'statvfs@openssh.com' ||
            name === 'lsetstat@openssh.com' ||
            name === 'expand-path@openssh.com'
          ) {
            const p = path();
            if (name === 'lsetstat@openssh.com')
              this.pending.set(id, { type, op: { op: 'setstat', path: p } });
            return { forward: 'check', paths: [p] };
          }
          if (
            name === 'fsync@openssh.com' ||
            name === 'fstatvfs@openssh.com' ||
            name === 'limits@openssh.com' ||
            name === 'home-directory' ||
            name === 'users-groups-by-id@openssh.com'
          )
            return { forward: true };
          // copy-data and unknown extensions move data the decoder cannot attribute to paths.
          return deny('sftp-extension', `chaperone: sftp extension ${name} is not allowed`, []);
        }
        default:
          // REALPATH, FSTAT, FSETSTAT, READDIR: handles already checked, or no file touched.
          return { forward: true };
      }
    } catch (err) {
      const reason =
        err instanceof PathError
          ? 'chaperone: path too long or not a valid path'
          : 'chaperone: malformed sftp request';
      return {
        forward: false,
        reply: statusPacket(id, FX_PERMISSION_DENIED, reason),
        rule: 'sftp-protocol',
        reason,
        paths: [],
      };
    }
  }

  /** A reply of the host: the operations it completes, to record. */
  reply(packet: Buffer): FileOp[] {
    const type = packet[4]!;
    if (type === FXP.VERSION) return [];
    const r = new Reader(packet, 5);
    try {
      const id = r.u32();
      const p = this.pending.get(id);
      if (!p) return [];
      this.pending.delete(id);
      if (type === FXP.HANDLE && p.open) {
        const handle = r.bytes().toString('hex');
        this.files.set(handle, {
          path: p.open.path,
          write: p.open.write,
          written: undefined,
          read: undefined,
        });
        return [];
      }
      if (type === FXP.DATA && p.read) {
        const f = this.files.get(p.read.handle);
        if (f) {
          f.read ??= newTransfer();
          advance(f.read, p.read.offset, r.bytes());
        }
        return [];
      }
      if (type !== FXP.STATUS) return [];
      const code = r.u32();
      const status = STATUS_NAMES[code] ?? `status ${code}`;
      if (p.close) {
        const f = this.files.get(p.close);
        this.files.delete(p.close);
        return f ? this.closed(f, status) : [];
      }
      if (p.open) return code === FX_OK ? [] : [{ op: 'open', path: p.open.path, status }];
      if (p.op) return [{ ...p.op, status }];
      return [];
    } catch {
      return [];
    }
  }

  private closed(f: OpenFile, status: string): FileOp[] {
    const out: FileOp[] = [];
    const done = (t: Transfer, op: 'upload' | 'download' | 'write' | 'read') => {
      const whole = t.whole && (op === 'upload' || op === 'download');
      out.push({
        op,
        path: f.path,
        bytes: t.bytes,
        ...(whole ? { sha256: t.hash.digest('hex') } : {}),
        status,
      });
    };
    if (f.written) done(f.written, f.written.whole ? 'upload' : 'write');
    if (f.read) done(f.read, f.read.whole ? 'download' : 'read');
    if (!f.written && !f.read) out.push({ op: 'close', path: f.path, status });
    return out;
  }

  /** Handles still open when the channel ends: what they moved, so nothing goes unrecorded. */
  drain(): FileOp[] {
    const out: FileOp[] = [];
    for (const f of this.files.values()) out.push(...this.closed(f, 'channel closed'));
    this.files.clear();
    return out;
  }
}

class PathError extends Error {}

export const SFTP_STATUS = { OK: FX_OK, PERMISSION_DENIED: FX_PERMISSION_DENIED };

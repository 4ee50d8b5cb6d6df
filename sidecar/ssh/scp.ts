// The legacy scp protocol (`scp -O`: an exec of `scp -t` to upload or `scp -f` to download) decoded
// while it is relayed, into the file events sftp produces (path, size, SHA-256, direction).
//
// Only the source's stream is decoded (the agent's input for -t, the host's output for -f): records
// `C<mode> <size> <name>` (a file, followed by its bytes and a status byte), `D<mode> 0 <name>` and
// `E` (enter and leave a directory, with -r), `T...` (times, with -p) and `\x01`/`\x02` error lines;
// the sink only answers with status bytes. Each C record comes out as its own segment so the relay
// can check its path (pathPattern) before the sink sees it; the bytes of a file are hashed as they
// pass and never held.
import { createHash, type Hash } from 'node:crypto';
import { posix } from 'node:path';
import type { FileOp } from './sftp.ts';

/** Longest record line: a file name of 4 KiB and its mode and size. */
const MAX_LINE = 4096 + 64;

export type ScpSegment =
  | { kind: 'bytes'; data: Buffer }
  /**
   * A file record: forward `line` once every one of `paths` is allowed, or refuse it and call
   * skip(). `path` is the file's path on the host; `paths` adds the other place it may land when
   * the target's kind is unknown.
   */
  | { kind: 'file'; path: string; paths: string[]; size: number; line: Buffer };

export interface ScpOptions {
  direction: 'upload' | 'download';
  /** The command line's paths, absolute and normalised (one target for -t, the sources for -f). */
  roots: readonly string[];
  /**
   * -t: the target is an existing directory (files go into it rather than replace it); undefined
   * when the sidecar could not tell (the host has no sftp to ask): both places are then checked.
   */
  targetIsDir: boolean | undefined;
}

type State = 'record' | 'data' | 'status' | 'status-message';

export class ScpDecoder {
  private readonly o: ScpOptions;
  private state: State = 'record';
  private line: Buffer[] = [];
  private lineBytes = 0;
  /** Directories entered below the top level (D records), the first being the top one. */
  private dirs: string[] = [];
  /** -f: which of the command's paths the next top-level record belongs to. */
  private topIndex = 0;
  private topRoot = '';
  private file: { path: string; size: number; left: number; hash: Hash } | undefined;
  private readonly done: FileOp[] = [];
  /** Set when the stream is not the scp protocol; the relay then closes the channel. */
  error: string | undefined;

  constructor(o: ScpOptions) {
    this.o = o;
  }

  get direction(): 'upload' | 'download' {
    return this.o.direction;
  }

  /** Splits a chunk of the source's stream into bytes to relay and file records to decide. */
  feed(chunk: Buffer): ScpSegment[] {
    const out: ScpSegment[] = [];
    let from = 0;
    let i = 0;
    const flush = (to: number) => {
      if (to > from) out.push({ kind: 'bytes', data: chunk.subarray(from, to) });
      from = to;
    };
    while (i < chunk.length && !this.error) {
      if (this.state === 'data') {
        const f = this.file!;
        const n = Math.min(f.left, chunk.length - i);
        f.hash.update(chunk.subarray(i, i + n));
        f.left -= n;
        i += n;
        if (f.left === 0) this.state = 'status';
        continue;
      }
      if (this.state === 'status') {
        const b = chunk[i++]!;
        if (b === 0) this.finish('ok');
        else this.state = 'status-message';
        continue;
      }
      // A record line is held until complete, so a C record split over two chunks is still
      // decided before any of it reaches the sink.
      flush(i);
      const nl = chunk.indexOf(0x0a, i);
      const end = nl < 0 ? chunk.length : nl + 1;
      this.line.push(chunk.subarray(i, end));
      this.lineBytes += end - i;
      i = end;
      from = end;
      if (this.lineBytes > MAX_LINE) {
        this.error = 'scp record line too long';
        break;
      }
      if (nl < 0) continue;
      const line = this.line.length === 1 ? this.line[0]! : Buffer.concat(this.line);
      this.line = [];
      this.lineBytes = 0;
      if (this.state === 'status-message') {
        this.finish(line.subarray(0, -1).toString('utf8'));
        out.push({ kind: 'bytes', data: line });
        continue;
      }
      const record = this.record(line);
      out.push(
        record
          ? { kind: 'file', path: record.paths[0]!, paths: record.paths, size: record.size, line }
          : { kind: 'bytes', data: line },
      );
    }
    flush(i);
    return out;
  }

  /** The last file record was refused: the source skips its bytes. */
  skip(): void {
    this.file = undefined;
    this.state = 'record';
  }

  /** Completed file transfers since the last call. */
  drain(): FileOp[] {
    return this.done.splice(0);
  }

  /** A transfer cut off by the end of the channel. */
  end(): FileOp[] {
    if (this.file) this.finish('channel closed', false);
    return this.drain();
  }

  private finish(status: string, whole = true): void {
    const f = this.file;
    this.state = 'record';
    this.file = undefined;
    if (!f) return;
    const moved = f.size - f.left;
    this.done.push({
      op: this.o.direction,
      path: f.path,
      bytes: moved,
      ...(whole && status === 'ok' && f.left === 0 ? { sha256: f.hash.digest('hex') } : {}),
      status,
    });
  }

  /** Parses one record line; returns the file to decide for a C record. */
  private record(line: Buffer): { paths: string[]; size: number } | undefined {
    const type = line[0];
    const text = line.subarray(1, -1).toString('utf8');
    const top = this.dirs.length === 0;
    if (type === 0x43 /* C */ || type === 0x44 /* D */) {
      const m = /^([0-7]{4}) (\d+) (.+)$/.exec(text);
      const name = m?.[3];
      if (!m || !name || name.includes('/') || name === '..' || name === '.') {
        this.error = `unexpected scp record ${JSON.stringify(line.subarray(0, 80).toString('utf8'))}`;
        return undefined;
      }
      if (top) this.topRoot = this.nextRoot();
      const paths = this.pathsOf(name);
      if (type === 0x44) {
        this.dirs.push(name);
        return undefined;
      }
      const size = Number(m[2]);
      this.file = { path: paths[0]!, size, left: size, hash: createHash('sha256') };
      this.state = size === 0 ? 'status' : 'data';
      return { paths, size };
    }
    if (type === 0x45 /* E */) {
      this.dirs.pop();
      return undefined;
    }
    // A source that could not read one of its paths says so and goes on with the next.
    if ((type === 0x01 || type === 0x02) && top && this.o.direction === 'download') this.nextRoot();
    return undefined;
  }

  private nextRoot(): string {
    const roots = this.o.roots;
    if (this.o.direction === 'upload') return roots[0] ?? '.';
    const root = roots[Math.min(this.topIndex, roots.length - 1)] ?? '.';
    this.topIndex++;
    return root;
  }

  /** Where a file or directory of the stream lives on the host (or may, target kind unknown). */
  private pathsOf(name: string): string[] {
    const root = this.topRoot;
    // -f: the top record is the source path itself; deeper ones are inside it. -t into a file
    // target: the top record becomes the target.
    const replacing = this.dirs.length === 0 ? root : posix.join(root, ...this.dirs.slice(1), name);
    if (this.o.direction === 'download' || this.o.targetIsDir === false) return [replacing];
    // -t into a directory: everything lands inside it.
    const inside = posix.join(root, ...this.dirs, name);
    if (this.o.targetIsDir === true || inside === replacing) return [inside];
    return [inside, replacing];
  }
}

/**
 * The paths of a legacy scp server command (`scp [-r -p -d -v -q] -t|-f [--] path...`); undefined
 * when the exec is not one, 'unparsable' when it has quoting or options this does not read.
 */
export function scpPaths(command: string): string[] | 'unparsable' | undefined {
  const words = command.trim().split(/\s+/);
  if (words[0] !== 'scp' && !/\/scp$/.test(words[0] ?? '')) return undefined;
  if (!words.some((w) => /^-[a-zA-Z]*[tf][a-zA-Z]*$/.test(w))) return undefined;
  if (/["'`$\\;&|<>()*?[\]{}~]/.test(command.slice(words[0]!.length))) return 'unparsable';
  const paths: string[] = [];
  let options = true;
  for (const w of words.slice(1)) {
    if (options && w === '--') options = false;
    else if (options && /^-[rpdvqtfO]+$/.test(w)) continue;
    else if (options && w.startsWith('-')) return 'unparsable';
    else {
      options = false;
      paths.push(w);
    }
  }
  return paths.length > 0 ? paths : 'unparsable';
}

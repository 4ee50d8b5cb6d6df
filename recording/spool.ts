// Local spool layout (the pod's emptyDir). Nothing here is deleted before the store confirmed it.
//   LOCK                                  pid of the recorder that owns the spool
//   journal/00000001.wal                  group-committed event records (see journal.ts)
//   sessions/<id>/state.json              chain position and totals after the last seal
//   sessions/<id>/seg-000001.zst          sealed segment waiting for upload
//   sessions/<id>/seg-000001.manifest.json
//   sessions/<id>/index.json              index object waiting for upload
import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { RecordingError } from './errors.ts';
import { SessionHeaderSchema } from './events.ts';
import { manifestName, parseSegmentName, segmentName } from './layout.ts';
import { fsyncDir } from './stores/file-store.ts';

export const SessionStateSchema = z.object({
  version: z.literal(1),
  header: SessionHeaderSchema,
  date: z.string(),
  namespace: z.string(),
  nextIndex: z.number().int().min(1),
  prevSha256: z.string().nullable(),
  status: z.enum(['open', 'ended', 'recovered']),
  ended: z.boolean(),
  endedAtMs: z.number().int().optional(),
  endReason: z.string().optional(),
  /** The bound on unacknowledged appends the writer of this session worked with (crash gap). */
  maxUnsettledAppends: z.number().int().min(0).optional(),
  totals: z.object({
    events: z.number(),
    rawBytes: z.number(),
    segments: z.number(),
    lastSeq: z.number(),
    lastSegmentSha256: z.string().nullable(),
    gaps: z.number(),
    lostEvents: z.number(),
    countsByKind: z.record(z.string(), z.number()),
    commands: z.object({ total: z.number(), sample: z.array(z.string()) }),
  }),
});
export type SessionState = z.infer<typeof SessionStateSchema>;

async function writeFileSynced(path: string, data: Uint8Array): Promise<void> {
  const fh = await open(path, 'w', 0o600);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export class Spool {
  readonly dir: string;
  readonly journalDir: string;
  readonly sessionsDir: string;
  private lockPath: string;

  constructor(dir: string) {
    this.dir = dir;
    this.journalDir = join(dir, 'journal');
    this.sessionsDir = join(dir, 'sessions');
    this.lockPath = join(dir, 'LOCK');
  }

  async init(): Promise<void> {
    await mkdir(this.journalDir, { recursive: true });
    await mkdir(this.sessionsDir, { recursive: true });
  }

  /** One recorder per spool: a LOCK file with our pid; a dead owner's lock is taken over. */
  async lock(): Promise<void> {
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        await writeFile(this.lockPath, String(process.pid), { flag: 'wx' });
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      const owner = Number((await readFile(this.lockPath, 'utf8').catch(() => '')).trim());
      if (owner > 0 && owner !== process.pid && isAlive(owner)) {
        throw new RecordingError(`spool ${this.dir} is in use by process ${owner}`);
      }
      await unlink(this.lockPath).catch(() => {});
    }
    throw new RecordingError(`could not lock spool ${this.dir}`);
  }

  async unlock(): Promise<void> {
    await unlink(this.lockPath).catch(() => {});
  }

  sessionDir(sessionId: string): string {
    return join(this.sessionsDir, sessionId);
  }

  private async atomicWrite(dir: string, name: string, data: Uint8Array): Promise<void> {
    const tmp = join(dir, `.${name}.${randomBytes(4).toString('hex')}.tmp`);
    await writeFileSynced(tmp, data);
    await rename(tmp, join(dir, name));
    await fsyncDir(dir);
  }

  async createSession(state: SessionState): Promise<void> {
    const dir = this.sessionDir(state.header.sessionId);
    try {
      await mkdir(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
        throw new RecordingError(`session ${state.header.sessionId} already exists in the spool`);
      }
      throw err;
    }
    await fsyncDir(this.sessionsDir);
    await this.writeState(state);
  }

  async writeState(state: SessionState): Promise<void> {
    await this.atomicWrite(
      this.sessionDir(state.header.sessionId),
      'state.json',
      Buffer.from(JSON.stringify(state)),
    );
  }

  async readState(sessionId: string): Promise<SessionState | undefined> {
    let text: string;
    try {
      text = await readFile(join(this.sessionDir(sessionId), 'state.json'), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    return SessionStateSchema.parse(JSON.parse(text));
  }

  async writeSealed(sessionId: string, index: number, segment: Buffer, manifest: Buffer): Promise<void> {
    const dir = this.sessionDir(sessionId);
    // Segment first: a manifest on disk always has its segment next to it.
    await writeFileSynced(join(dir, segmentName(index)), segment);
    await this.atomicWrite(dir, manifestName(index), manifest);
  }

  async readSealed(sessionId: string, index: number): Promise<{ segment: Buffer; manifest: Buffer }> {
    const dir = this.sessionDir(sessionId);
    const [segment, manifest] = await Promise.all([
      readFile(join(dir, segmentName(index))),
      readFile(join(dir, manifestName(index))),
    ]);
    return { segment, manifest };
  }

  /** Indices of sealed segments (with their manifest) still in the spool, ascending. */
  async listSealed(sessionId: string): Promise<number[]> {
    const names = await readdir(this.sessionDir(sessionId)).catch(() => [] as string[]);
    const manifests = new Set<number>();
    for (const n of names) {
      const p = parseSegmentName(n);
      if (p?.part === 'manifest') manifests.add(p.index);
    }
    return [...manifests].sort((a, b) => a - b);
  }

  async sealedSize(sessionId: string, index: number): Promise<number> {
    const dir = this.sessionDir(sessionId);
    const [a, b] = await Promise.all([
      stat(join(dir, segmentName(index))),
      stat(join(dir, manifestName(index))),
    ]);
    return a.size + b.size;
  }

  /** Removes a sealed segment the store confirmed (manifest first, so a crash leaves no orphan manifest). */
  async removeSealed(sessionId: string, index: number): Promise<void> {
    const dir = this.sessionDir(sessionId);
    await unlink(join(dir, manifestName(index))).catch(() => {});
    await unlink(join(dir, segmentName(index))).catch(() => {});
  }

  async writeIndex(sessionId: string, data: Buffer): Promise<void> {
    await this.atomicWrite(this.sessionDir(sessionId), 'index.json', data);
  }

  async readIndex(sessionId: string): Promise<Buffer | undefined> {
    try {
      return await readFile(join(this.sessionDir(sessionId), 'index.json'));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  /** Removes the pending index if it is still the version that was uploaded. */
  async removeIndexIfSame(sessionId: string, uploaded: Buffer): Promise<boolean> {
    const current = await this.readIndex(sessionId);
    if (!current?.equals(uploaded)) return false;
    await unlink(join(this.sessionDir(sessionId), 'index.json')).catch(() => {});
    return true;
  }

  async removeSession(sessionId: string): Promise<void> {
    await rm(this.sessionDir(sessionId), { recursive: true, force: true });
    await fsyncDir(this.sessionsDir).catch(() => {});
  }

  async listSessions(): Promise<string[]> {
    const names = await readdir(this.sessionsDir).catch(() => [] as string[]);
    return names.filter((n) => !n.startsWith('.')).sort();
  }

  /** Leftover temporary files of interrupted atomic writes. */
  async removeTemporaries(sessionId: string): Promise<void> {
    const dir = this.sessionDir(sessionId);
    for (const n of await readdir(dir).catch(() => [] as string[])) {
      if (n.startsWith('.') && n.endsWith('.tmp')) await unlink(join(dir, n)).catch(() => {});
    }
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

// The recorder: one per sidecar process. Owns the spool (journal + sealed segments), the signing
// key and the uploader; recovers whatever a previous process left in the spool.
import type { KeyObject } from 'node:crypto';
import { unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { z } from 'zod';
import { Compressor } from './compressor.ts';
import { DEFAULT_MAX_UNSETTLED_APPENDS } from './crash-bound.ts';
import { RecorderClosedError, RecordingError, SpoolFullError } from './errors.ts';
import { type SessionHeader, type SessionHeaderInput, SessionHeaderInputSchema } from './events.ts';
import { emptyTotals } from './index-record.ts';
import { Journal, journalFileName, listJournalFiles, readJournalFile } from './journal.ts';
import { loadSigningKey, type SigningKey } from './keys.ts';
import { newSessionId, partitionDate, partitionNamespace } from './layout.ts';
import type { RecorderHost } from './recorder-host.ts';
import { JournalReplay, reconcileSealed } from './recovery.ts';
import { type SessionRecording, SessionWriter } from './session-writer.ts';
import { type SessionState, Spool } from './spool.ts';
import { openStore } from './stores/open-store.ts';
import type { S3Options } from './stores/s3-store.ts';
import type { SegmentStore } from './stores/store.ts';
import { Uploader } from './uploader.ts';

export interface RecorderOptions {
  /** Local disk (the pod's emptyDir); fsync'd. */
  spoolDir: string;
  /** 'file:///abs/dir' or 's3://bucket/prefix' (+ s3 options), or a store object. */
  store: string | SegmentStore;
  s3?: S3Options;
  /** Ed25519 private key (PEM or KeyObject). */
  signingKey: KeyObject | string;
  /** Written into manifests; defaults to the first 16 hex digits of the key's fingerprint. */
  keyId?: string;
  /** Seal a segment at this many uncompressed bytes or this age (defaults 4 MiB / 10 s). */
  seal?: { maxBytes?: number; maxMs?: number };
  /** Bound on unsent local data (journal + sealed segments); default DEFAULT_SPOOL_LIMIT_BYTES. */
  spoolLimitBytes?: number;
  failMode?: 'failClosed' | 'failOpen';
  /** Object Lock retention for every uploaded object. */
  retention?: { mode: 'GOVERNANCE' | 'COMPLIANCE'; days: number };
  logger?: Logger;
  /** Upload concurrency and retry backoff (defaults 4, 200 ms .. 30 s). */
  upload?: { concurrency?: number; minBackoffMs?: number; maxBackoffMs?: number };
  /** zstd level (default 3). */
  compressionLevel?: number;
  /** Journal file size before a new one is started (default 64 MiB). */
  journalRotateBytes?: number;
  /**
   * How long a journal group commit stays open for more events, in ms (default
   * DEFAULT_COMMIT_WINDOW_MS). Appends resolve that much later; a crash may lose the open window.
   */
  commitWindowMs?: number;
  /** How often a long session's index object is refreshed at seal time (default 60 s). */
  indexRefreshMs?: number;
  /**
   * How many appends per session the caller leaves unacknowledged at most before it waits
   * (default DEFAULT_MAX_UNSETTLED_APPENDS). Not enforced here: it is what a crash can lose, and
   * recovery declares it as the bound in the session's `recording.gap` (cause `crash`).
   */
  maxUnsettledAppends?: number;
}

export interface RecorderStatus {
  spooledBytes: number;
  pendingSegments: number;
  storeHealthy: boolean;
  spoolLimitBytes: number;
  failMode: 'failClosed' | 'failOpen';
  /** Raw bytes sealed but not compressed yet (appends wait when this passes 2 segments). */
  sealBacklogBytes: number;
  liveSessions: number;
  blockedSessions: number;
  lastStoreError?: string;
  storeUnhealthySince?: string;
  recoveredSessions: number;
}

export interface Recorder {
  startSession(header: SessionHeaderInput): Promise<SessionRecording>;
  close(opts?: { deadlineMs?: number }): Promise<void>;
  status(): RecorderStatus;
}

/**
 * Default bound on unsent local data: 512 MiB. The sidecar's spool is an emptyDir, often counted
 * against the pod's ephemeral-storage limit, so the default stays well below a typical node's share.
 * The SessionPolicy (and so the sidecar config) takes its default from here.
 */
export const DEFAULT_SPOOL_LIMIT_BYTES = 512 * 1024 * 1024;
/**
 * 0: a group closes at the end of the event-loop turn, so a caller that awaits each append waits
 * for one disk write only. Callers that do not await (the sidecar's gateways) set a window.
 */
export const DEFAULT_COMMIT_WINDOW_MS = 0;

const OptionsSchema = z.object({
  spoolDir: z.string().min(1),
  keyId: z.string().min(1).max(128).optional(),
  seal: z
    .object({ maxBytes: z.number().int().min(1024).optional(), maxMs: z.number().int().min(10).optional() })
    .optional(),
  spoolLimitBytes: z.number().int().min(1).optional(),
  failMode: z.enum(['failClosed', 'failOpen']).optional(),
  retention: z.object({ mode: z.enum(['GOVERNANCE', 'COMPLIANCE']), days: z.number().positive() }).optional(),
  upload: z
    .object({
      concurrency: z.number().int().min(1).max(64).optional(),
      minBackoffMs: z.number().int().min(1).optional(),
      maxBackoffMs: z.number().int().min(1).optional(),
    })
    .optional(),
  compressionLevel: z.number().int().min(-7).max(22).optional(),
  journalRotateBytes: z.number().int().min(4096).optional(),
  /** How long a journal group commit waits for more events (ms); the durability delay of an event. */
  commitWindowMs: z.number().int().min(0).max(1000).optional(),
  indexRefreshMs: z.number().int().min(0).optional(),
  maxUnsettledAppends: z.number().int().min(1).optional(),
});

class RecorderImpl implements Recorder, RecorderHost<SessionWriter> {
  readonly journal: Journal;
  readonly key: SigningKey;
  readonly spool: Spool;
  readonly uploader: Uploader;
  readonly log: Logger;
  readonly sealMaxBytes: number;
  readonly sealMaxMs: number;
  readonly compressor: Compressor;
  readonly indexRefreshMs: number;
  readonly failMode: 'failClosed' | 'failOpen';
  readonly limit: number;
  readonly maxUnsettledAppends: number;
  private readonly live = new Map<string, SessionWriter>();
  private readonly blockedSessions = new Set<SessionWriter>();
  private readonly gapSessions = new Set<SessionWriter>();
  spooledBytes = 0;
  private sealBacklogBytes = 0;
  private readonly sealBacklogLimit: number;
  private sealRoomWaiters: (() => void)[] = [];
  private sealRoomPromise: Promise<void> | undefined;
  private forcedSeal = false;
  private closed = false;
  private closing: Promise<void> | undefined;
  private recovering = false;
  private timer: NodeJS.Timeout | undefined;
  private journalsDeletedBelow = 0;
  recoveredSessions = 0;

  constructor(
    parts: { journal: Journal; key: SigningKey; spool: Spool; store: SegmentStore; log: Logger },
    o: z.infer<typeof OptionsSchema>,
  ) {
    this.journal = parts.journal;
    this.key = parts.key;
    this.spool = parts.spool;
    this.log = parts.log;
    this.sealMaxBytes = o.seal?.maxBytes ?? 4 * 1024 * 1024;
    this.sealMaxMs = o.seal?.maxMs ?? 10_000;
    this.compressor = new Compressor(o.compressionLevel ?? 3);
    this.indexRefreshMs = o.indexRefreshMs ?? 60_000;
    this.failMode = o.failMode ?? 'failClosed';
    this.limit = o.spoolLimitBytes ?? DEFAULT_SPOOL_LIMIT_BYTES;
    this.maxUnsettledAppends = o.maxUnsettledAppends ?? DEFAULT_MAX_UNSETTLED_APPENDS;
    this.sealBacklogLimit = 2 * this.sealMaxBytes + 1024 * 1024;
    this.uploader = new Uploader(
      parts.store,
      parts.spool,
      {
        concurrency: o.upload?.concurrency ?? 4,
        minBackoffMs: o.upload?.minBackoffMs ?? 200,
        maxBackoffMs: o.upload?.maxBackoffMs ?? 30_000,
        ...(o.retention ? { retention: o.retention } : {}),
      },
      { uploaded: (bytes) => this.freeSpooled(bytes), log: this.log },
    );
  }

  // --- RecorderHost -------------------------------------------------------------------------

  isFull(): boolean {
    return this.spooledBytes >= this.limit;
  }

  fullReason(): string {
    const store = this.uploader.healthy
      ? 'store reachable but behind'
      : `store unreachable since ${new Date(this.uploader.unhealthySince ?? Date.now()).toISOString()}: ${this.uploader.lastError ?? 'unknown error'}`;
    return `spool full (${this.spooledBytes} of ${this.limit} bytes); ${store}`;
  }

  addSpooled(bytes: number): void {
    this.spooledBytes += bytes;
    if (this.isFull() && !this.forcedSeal) {
      // Seal what is open so it can be uploaded (and compressed) instead of waiting for size/age.
      this.forcedSeal = true;
      setImmediate(() => {
        for (const s of this.live.values()) s.sealNow(false);
      });
    }
  }

  sealBacklog(delta: number): void {
    this.sealBacklogBytes += delta;
    if (this.sealBacklogBytes <= this.sealBacklogLimit && this.sealRoomPromise) {
      const waiters = this.sealRoomWaiters;
      this.sealRoomWaiters = [];
      this.sealRoomPromise = undefined;
      for (const w of waiters) w();
    }
  }

  sealRoom(): Promise<void> | undefined {
    if (this.sealBacklogBytes <= this.sealBacklogLimit) return undefined;
    this.sealRoomPromise ??= new Promise((resolve) => this.sealRoomWaiters.push(resolve));
    return this.sealRoomPromise;
  }

  private freeSpooled(bytes: number): void {
    this.spooledBytes = Math.max(0, this.spooledBytes - bytes);
    if (!this.isFull()) {
      this.forcedSeal = false;
      for (const s of [...this.blockedSessions]) s.drainWaiting();
      for (const s of [...this.gapSessions]) if (!this.isFull()) s.flushGap();
    }
  }

  sealed(session: SessionWriter, journalBytes: number, storedBytes: number, index: number): void {
    this.spooledBytes += storedBytes - journalBytes;
    this.uploader.segmentSealed(session.sessionId, index, storedBytes);
    if (!this.isFull()) this.freeSpooled(0);
    void this.collectJournals();
  }

  blocked(session: SessionWriter): void {
    this.blockedSessions.add(session);
  }

  unblocked(session: SessionWriter): void {
    this.blockedSessions.delete(session);
  }

  gapOpened(session: SessionWriter): void {
    this.gapSessions.add(session);
  }

  gapClosed(session: SessionWriter): void {
    this.gapSessions.delete(session);
  }

  finished(session: SessionWriter): void {
    this.live.delete(session.sessionId);
    this.blockedSessions.delete(session);
    this.gapSessions.delete(session);
    this.uploader.sessionEnded(session.sessionId);
  }

  /** Journal files older than every unsealed event are no longer needed. */
  private async collectJournals(): Promise<void> {
    if (this.recovering) return;
    let needed = this.journal.fileNo;
    for (const s of this.live.values()) {
      if (s.hasOpenSegment) needed = Math.min(needed, s.segJournalNo);
      if (s.inflightJournalNos.length > 0) needed = Math.min(needed, s.inflightJournalNos[0]!);
    }
    if (needed <= this.journalsDeletedBelow) return;
    this.journalsDeletedBelow = needed;
    await this.journal
      .deleteBefore(needed)
      .catch((err) => this.log.warn({ err: err.message }, 'journal cleanup failed'));
  }

  // --- Recorder -------------------------------------------------------------------------------

  async startSession(input: SessionHeaderInput): Promise<SessionRecording> {
    if (this.closed) throw new RecorderClosedError('recorder is closed: no new sessions');
    const parsed = SessionHeaderInputSchema.safeParse(input);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new RecordingError(`invalid session header: ${issue?.path.join('.')}: ${issue?.message}`);
    }
    if (this.failMode === 'failClosed' && this.isFull()) {
      throw new SpoolFullError(`${this.fullReason()}: new sessions are refused (failClosed)`);
    }
    const now = Date.now();
    const sessionId = parsed.data.sessionId ?? newSessionId(now);
    if (this.live.has(sessionId)) throw new RecordingError(`session ${sessionId} is already being recorded`);
    const header: SessionHeader = {
      ...parsed.data,
      sessionId,
      startedAt: new Date(now).toISOString(),
      startedAtMs: now,
      recorder: {
        format: 'chaperone.recording/v1',
        keyId: this.key.keyId,
        keyFingerprint: this.key.fingerprint,
      },
    };
    const state: SessionState = {
      version: 1,
      header,
      date: partitionDate(now),
      namespace: partitionNamespace(header.identity.namespace),
      nextIndex: 1,
      prevSha256: null,
      status: 'open',
      ended: false,
      maxUnsettledAppends: this.maxUnsettledAppends,
      totals: emptyTotals(),
    };
    await this.spool.createSession(state);
    const writer = new SessionWriter(this, state);
    this.live.set(sessionId, writer);
    this.uploader.track(sessionId, writer.location);
    await writer.writeInitialIndex();
    await writer.startRecording();
    return writer;
  }

  status(): RecorderStatus {
    return {
      spooledBytes: this.spooledBytes,
      pendingSegments: this.uploader.pendingSegments,
      storeHealthy: this.uploader.healthy,
      spoolLimitBytes: this.limit,
      failMode: this.failMode,
      sealBacklogBytes: this.sealBacklogBytes,
      liveSessions: this.live.size,
      blockedSessions: this.blockedSessions.size,
      ...(this.uploader.lastError && !this.uploader.healthy
        ? { lastStoreError: this.uploader.lastError }
        : {}),
      ...(this.uploader.unhealthySince
        ? { storeUnhealthySince: new Date(this.uploader.unhealthySince).toISOString() }
        : {}),
      recoveredSessions: this.recoveredSessions,
    };
  }

  close(opts: { deadlineMs?: number } = {}): Promise<void> {
    this.closing ??= this.doClose(opts.deadlineMs ?? 30_000);
    return this.closing;
  }

  private async doClose(deadlineMs: number): Promise<void> {
    this.closed = true;
    const deadline = Date.now() + deadlineMs;
    const sessions = [...this.live.values()];
    const ends = Promise.all(sessions.map((s) => s.end({ reason: 'recorder closed' })));
    if (!(await beforeDeadline(ends, deadline))) {
      const err = new RecorderClosedError(
        'recorder closed before the event could be spooled (store down, spool full)',
      );
      for (const s of sessions) s.rejectWaiting(err);
      await ends;
    }
    if (this.timer) clearInterval(this.timer);
    const uploaded = await this.uploader.drain(deadline);
    this.uploader.stop();
    await this.journal.close();
    this.compressor.close();
    if (this.live.size === 0) {
      // Every event is sealed into the spool's session folders: the journal has served its purpose.
      await this.journal.deleteBefore(Number.MAX_SAFE_INTEGER);
      await removeJournalFile(this.journal);
    }
    await this.spool.unlock();
    if (!uploaded) {
      this.log.warn(
        {
          spooledBytes: this.spooledBytes,
          pendingSegments: this.uploader.pendingSegments,
          spoolDir: this.spool.dir,
        },
        'recorder closed with data still spooled; the next recorder on this spool uploads it',
      );
    }
  }

  startTimers(): void {
    const tick = Math.max(5, Math.min(1000, Math.floor(this.sealMaxMs / 4)));
    this.timer = setInterval(() => {
      const now = Date.now();
      for (const s of this.live.values())
        if (s.hasOpenSegment && now - s.segOpenedAt >= this.sealMaxMs) s.sealNow(false);
    }, tick);
    this.timer.unref();
  }

  // --- Recovery -------------------------------------------------------------------------------

  /** Uploads what a previous process left sealed; replays and ends the sessions it left open. */
  async recover(oldJournals: number[]): Promise<void> {
    this.recovering = true;
    const restoring = new Map<string, SessionWriter>();
    for (const sessionId of await this.spool.listSessions()) {
      await this.spool.removeTemporaries(sessionId);
      const state = await reconcileSealed(this.spool, sessionId, this.key, this.log);
      if (!state) continue;
      const location = { sessionId, date: state.date, namespace: state.namespace };
      this.uploader.track(sessionId, location);
      for (const index of await this.spool.listSealed(sessionId)) {
        const size = await this.spool.sealedSize(sessionId, index);
        this.spooledBytes += size;
        this.uploader.segmentSealed(sessionId, index, size);
      }
      if (await this.spool.readIndex(sessionId)) this.uploader.indexChanged(sessionId);
      if (state.ended) {
        this.uploader.sessionEnded(sessionId);
        continue;
      }
      const writer = new SessionWriter(this, state);
      this.live.set(sessionId, writer);
      restoring.set(sessionId, writer);
    }
    const replay = new JournalReplay(restoring);
    for (const no of oldJournals) {
      for (const entry of readJournalFile(join(this.spool.journalDir, journalFileName(no)))) {
        if (entry.type === 'torn')
          this.log.warn({ journal: no, ...entry }, 'unreadable journal stretch skipped during recovery');
        replay.add(entry);
      }
    }
    for (const [sessionId, writer] of restoring) {
      const losses = replay.lossesOf(sessionId);
      await writer.finishRecovery(losses);
      this.recoveredSessions++;
      this.log.warn({ sessionId, ...losses }, 'recovered session left open by a previous writer');
    }
    this.recovering = false;
    // Everything the old journals held is now sealed in the spool.
    await this.journal.deleteBefore(this.journal.fileNo);
    this.journalsDeletedBelow = this.journal.fileNo;
  }
}

async function removeJournalFile(journal: Journal): Promise<void> {
  await unlink(join(journal.dir, journalFileName(journal.fileNo))).catch(() => {});
}

async function beforeDeadline(p: Promise<unknown>, deadline: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), Math.max(0, deadline - Date.now()));
  });
  const r = await Promise.race([p.then(() => true as const), late]);
  clearTimeout(timer);
  return r;
}

/** Default logger: discards everything (the sidecar passes its pino logger). */
function silentLogger(): Logger {
  const noop = () => {};
  const log = {
    level: 'silent',
    trace: noop,
    debug: noop,
    info: noop,
    warn: noop,
    error: noop,
    fatal: noop,
    silent: noop,
  };
  return { ...log, child: () => log } as unknown as Logger;
}

export async function openRecorder(options: RecorderOptions): Promise<Recorder> {
  const parsed = OptionsSchema.safeParse(options);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new RecordingError(`invalid recorder options: ${issue?.path.join('.')}: ${issue?.message}`);
  }
  const key = loadSigningKey(options.signingKey, options.keyId);
  const store =
    typeof options.store === 'string'
      ? openStore(options.store, { maxAttempts: 1, ...options.s3 })
      : options.store;
  const log = options.logger ?? silentLogger();
  const spool = new Spool(options.spoolDir);
  await spool.init();
  await spool.lock();
  try {
    const oldJournals = await listJournalFiles(spool.journalDir);
    const journal = await Journal.open(
      spool.journalDir,
      parsed.data.journalRotateBytes ?? 64 * 1024 * 1024,
      parsed.data.commitWindowMs ?? DEFAULT_COMMIT_WINDOW_MS,
    );
    const recorder = new RecorderImpl({ journal, key, spool, store, log }, parsed.data);
    await recorder.recover(oldJournals);
    recorder.startTimers();
    return recorder;
  } catch (err) {
    await spool.unlock();
    throw err;
  }
}

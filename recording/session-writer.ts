// One recorded session: assigns sequence numbers, journals each event (group commit), buffers the
// open segment in memory, and seals it (compress, hash, chain, sign, persist) off the append path.
import { createHash } from 'node:crypto';
import type { z } from 'zod';
import { RecordingError } from './errors.ts';
import {
  type EventInput,
  type Gap,
  isReservedKind,
  knownPayloadSchemas,
  type SessionHeader,
} from './events.ts';
import { buildIndex, encodeIndex, noteCommand, type SessionTotals } from './index-record.ts';

/** Events whose summary names a command that did not run (yet): sampled, not counted. */
const ATTEMPT_KINDS = new Set(['policy.blocked', 'approval.requested']);

import { sessionTag } from './journal.ts';
import type { SessionLocation } from './layout.ts';
import { buildManifest, encodeManifest } from './manifest.ts';
import type { RecorderHost } from './recorder-host.ts';
import type { RecoveryLosses, ReplayTarget } from './recovery.ts';
import { recycleChunks, SegmentBuffer } from './segment-buffer.ts';
import type { SessionState } from './spool.ts';

const RESOLVED = Promise.resolve();

export interface SessionRecording {
  readonly sessionId: string;
  append(event: EventInput): Promise<void>;
  end(summary: { reason: string; counts?: Record<string, number> }): Promise<void>;
}

interface Waiter {
  input: EventInput;
  wallMs: number;
  monoNs: bigint;
  resolve: () => void;
  reject: (err: unknown) => void;
}

interface OpenGap {
  fromSeq: number;
  toSeq: number;
  events: number;
  bytes: number;
  fromWallMs: number;
  toWallMs: number;
  reason: string;
}

interface Snapshot {
  raw: Buffer[];
  rawBytes: number;
  firstSeq: number;
  lastSeq: number;
  events: number;
  firstWallMs: number;
  lastWallMs: number;
  journalBytes: number;
  final: boolean;
  totals: SessionTotals;
}

/** What the writer knows of a kind once it has seen it: its JSON and its payload schema, if any. */
interface KindInfo {
  json: string;
  schema: z.ZodType | undefined;
}

const kinds = new Map<string, KindInfo>();

/** A valid, unreserved kind's info (cached: a gateway appends the same few kinds all along). */
function kindInfo(kind: unknown): KindInfo | RecordingError {
  const known = typeof kind === 'string' ? kinds.get(kind) : undefined;
  if (known) return known;
  if (typeof kind !== 'string' || kind.length === 0 || kind.length > 200) {
    return new RecordingError('event kind must be a non-empty string of at most 200 characters');
  }
  if (isReservedKind(kind)) return new RecordingError(`event kind ${kind} is reserved for the recorder`);
  const info = { json: JSON.stringify(kind), schema: knownPayloadSchemas[kind] };
  if (kinds.size < 10_000) kinds.set(kind, info);
  return info;
}

function checkInput(input: EventInput): RecordingError | undefined {
  const info = kindInfo(input?.kind);
  if (info instanceof RecordingError) return info;
  const d = input.direction;
  if (d !== 'client' && d !== 'server' && d !== 'internal') {
    return new RecordingError(`event direction must be client, server or internal (got ${String(d)})`);
  }
  const schema = info.schema;
  if (typeof input.payload !== 'object' || input.payload === null || Array.isArray(input.payload)) {
    return new RecordingError(`payload of ${input.kind} must be a JSON object`);
  }
  if (schema) {
    const r = schema.safeParse(input.payload);
    if (!r.success)
      return new RecordingError(
        `payload of ${input.kind} is invalid: ${r.error.issues[0]?.path.join('.')} ${r.error.issues[0]?.message}`,
      );
  }
  return undefined;
}

/**
 * The start of an event line, up to the payload; the line is head + payload JSON + "}". Field
 * order is fixed (seq first: the journal reader relies on it).
 */
function lineHead(seq: number, wallMs: number, monoNs: bigint, direction: string, kind: string): string {
  const k = kinds.get(kind)?.json ?? JSON.stringify(kind);
  return `{"seq":${seq},"wallMs":${wallMs},"monoNs":"${monoNs}","direction":"${direction}","kind":${k},"payload":`;
}

const hex = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

export class SessionWriter implements SessionRecording, ReplayTarget {
  readonly sessionId: string;
  readonly header: SessionHeader;
  readonly location: SessionLocation;
  /** Unacknowledged appends the caller keeps at most: what a crash can lose (the crash gap's bound). */
  readonly maxUnsettledAppends: number;
  private readonly host: RecorderHost<SessionWriter>;
  private readonly tag: Buffer;
  private nextSeq = 0;
  private seg = new SegmentBuffer();
  private segEvents = 0;
  private segFirstSeq = 0;
  private segLastSeq = 0;
  private segFirstWall = 0;
  private segLastWall = 0;
  private segJournalBytes = 0;
  /** When the open segment got its first event (Date.now ms), for time-based sealing. */
  segOpenedAt = 0;
  /** Journal file that holds the open segment's first record. */
  segJournalNo = 0;
  /** Journal files still needed by snapshots being sealed. */
  readonly inflightJournalNos: number[] = [];
  private nextIndex = 1;
  private prevSha: string | null = null;
  private totals: SessionTotals;
  private sealedTotals: SessionTotals;
  private chain: Promise<void> = RESOLVED;
  private waiting: Waiter[] = [];
  private drainedWaiters: (() => void)[] = [];
  private gap: OpenGap | undefined;
  private ending: Promise<void> | undefined;
  private status: SessionState['status'] = 'open';
  private endStatus: 'ended' | 'recovered' = 'ended';
  private endedAtMs: number | undefined;
  private endReason: string | undefined;
  private lastIndexWrite = 0;
  /** Recovery: the replayed events included the session's end. */
  private replayedEnd = false;

  constructor(host: RecorderHost<SessionWriter>, state: SessionState) {
    this.host = host;
    this.header = state.header;
    this.sessionId = state.header.sessionId;
    this.location = { sessionId: this.sessionId, date: state.date, namespace: state.namespace };
    this.tag = sessionTag(this.sessionId);
    this.nextIndex = state.nextIndex;
    this.prevSha = state.prevSha256;
    this.totals = structuredClone(state.totals);
    this.sealedTotals = structuredClone(state.totals);
    this.nextSeq = state.totals.lastSeq + 1;
    this.maxUnsettledAppends = state.maxUnsettledAppends ?? host.maxUnsettledAppends;
  }

  get hasOpenSegment(): boolean {
    return this.segEvents > 0;
  }

  get lastSealedSeq(): number {
    return this.sealedTotals.lastSeq;
  }

  get isBlocked(): boolean {
    return this.waiting.length > 0;
  }

  get hasGap(): boolean {
    return this.gap !== undefined;
  }

  append(input: EventInput): Promise<void> {
    if (this.ending) return Promise.reject(new RecordingError(`session ${this.sessionId} has ended`));
    const invalid = checkInput(input);
    if (invalid) return Promise.reject(invalid);
    const wallMs = input.at ? Math.trunc(input.at.wallMs) : Date.now();
    const monoNs = input.at ? input.at.monoNs : process.hrtime.bigint();
    if (this.waiting.length > 0 || (this.host.failMode === 'failClosed' && this.host.isFull())) {
      return new Promise<void>((resolve, reject) => {
        this.waiting.push({ input, wallMs, monoNs, resolve, reject });
        this.host.blocked(this);
      });
    }
    return this.write(input, wallMs, monoNs);
  }

  private write(input: EventInput, wallMs: number, monoNs: bigint): Promise<void> {
    let payloadJson: string | undefined;
    try {
      payloadJson = JSON.stringify(input.payload);
    } catch (err) {
      return Promise.reject(
        new RecordingError(`payload of ${input.kind} is not JSON: ${(err as Error).message}`),
      );
    }
    if (payloadJson === undefined)
      return Promise.reject(new RecordingError(`payload of ${input.kind} is not JSON`));
    if (this.host.failMode === 'failOpen' && this.host.isFull()) {
      const head = lineHead(this.nextSeq, wallMs, monoNs, input.direction, input.kind);
      this.drop(Buffer.byteLength(head) + Buffer.byteLength(payloadJson) + 2, wallMs);
      return RESOLVED;
    }
    if (this.gap) this.flushGap();
    try {
      this.writeLine(input.kind, input.direction, payloadJson, wallMs, monoNs, input.summary);
    } catch (err) {
      return Promise.reject(err);
    }
    const committed = this.host.journal.commit(input.urgent === true);
    // Compression behind the writers: hold acknowledgements so snapshots do not pile up in memory.
    const room = this.host.sealRoom();
    return room ? Promise.all([committed, room]).then(() => {}) : committed;
  }

  /** failOpen with a full spool: the event is not kept; its seq and size go into the open gap. */
  private drop(bytes: number, wallMs: number): void {
    const seq = this.nextSeq++;
    if (!this.gap) {
      this.gap = {
        fromSeq: seq,
        toSeq: seq,
        events: 1,
        bytes,
        fromWallMs: wallMs,
        toWallMs: wallMs,
        reason: this.host.fullReason(),
      };
      this.host.gapOpened(this);
      this.host.log.warn(
        { sessionId: this.sessionId, fromSeq: seq },
        'spool full (failOpen): events are not being kept',
      );
    } else {
      this.gap.toSeq = seq;
      this.gap.events++;
      this.gap.bytes += bytes;
      this.gap.toWallMs = wallMs;
    }
  }

  /** Writes the signed record of what was lost, as soon as there is room again (or at the end). */
  flushGap(): void {
    const g = this.gap;
    if (!g) return;
    this.gap = undefined;
    this.host.gapClosed(this);
    this.totals.gaps++;
    this.totals.lostEvents += g.events;
    this.writeControl('recording.gap', { cause: 'spool-full', ...g });
    void this.host.journal.commit();
  }

  private writeControl(kind: string, payload: Record<string, unknown>): void {
    this.writeLine(kind, 'internal', JSON.stringify(payload), Date.now(), process.hrtime.bigint(), undefined);
  }

  private noteOpen(seq: number, wallMs: number): void {
    if (this.segEvents === 0) {
      this.segFirstSeq = seq;
      this.segFirstWall = wallMs;
      this.segOpenedAt = Date.now();
      this.segJournalNo = this.host.journal.fileNo;
    }
    this.segEvents++;
    this.segLastSeq = seq;
    this.segLastWall = wallMs;
  }

  private writeLine(
    kind: string,
    direction: string,
    payloadJson: string,
    wallMs: number,
    monoNs: bigint,
    summary: string | undefined,
  ): void {
    const seq = this.nextSeq;
    const head = lineHead(seq, wallMs, monoNs, direction, kind);
    const before = this.seg.length;
    const recordBytes = this.host.journal.append(this.tag, head, payloadJson, this.seg);
    this.nextSeq++;
    this.noteOpen(seq, wallMs);
    this.segJournalBytes += recordBytes;
    const t = this.totals;
    t.events++;
    t.rawBytes += this.seg.length - before;
    t.lastSeq = seq;
    t.countsByKind[kind] = (t.countsByKind[kind] ?? 0) + 1;
    if (summary) noteCommand(t, summary, !ATTEMPT_KINDS.has(kind));
    this.host.addSpooled(recordBytes);
    if (this.seg.length >= this.host.sealMaxBytes) this.sealNow(false);
  }

  /** Recovery: an event line read back from the journal goes straight into the open segment. */
  replay(line: Buffer, seq: number): { kind: string; payload: Record<string, unknown> | undefined } {
    let parsed: { wallMs?: unknown; kind?: unknown; payload?: unknown };
    try {
      parsed = JSON.parse(line.toString('utf8'));
    } catch {
      parsed = {};
    }
    const wallMs = typeof parsed.wallMs === 'number' ? parsed.wallMs : Date.now();
    const kind = typeof parsed.kind === 'string' ? parsed.kind : 'unknown';
    const payload =
      typeof parsed.payload === 'object' && parsed.payload !== null
        ? (parsed.payload as Record<string, unknown>)
        : undefined;
    const before = this.seg.length;
    this.seg.appendLine(line, 0, line.length);
    this.noteOpen(seq, wallMs);
    this.nextSeq = seq + 1;
    const t = this.totals;
    t.events++;
    t.rawBytes += this.seg.length - before;
    t.lastSeq = seq;
    t.countsByKind[kind] = (t.countsByKind[kind] ?? 0) + 1;
    if (kind === 'session.end') this.replayedEnd = true;
    if (kind === 'recording.gap') {
      t.gaps++;
      if (typeof payload?.events === 'number') t.lostEvents += payload.events;
    }
    if (this.seg.length >= this.host.sealMaxBytes) this.sealNow(false);
    return { kind, payload };
  }

  /**
   * Recovery: the session's first record (`session.start`, seq 0) did not read back. The header it
   * carried is the one kept in the spool state, so it is written again (at the session's start
   * time) rather than leaving a recording without its signed identity.
   */
  ensureStart(): void {
    if (this.nextSeq !== 0) return;
    const wallMs = this.header.startedAtMs;
    this.writeLine('session.start', 'internal', JSON.stringify(this.header), wallMs, 0n, undefined);
  }

  /** Recovery: declare what was lost, mark the recording as recovered and end it. */
  async finishRecovery(losses: RecoveryLosses): Promise<void> {
    this.endStatus = 'recovered';
    this.ensureStart();
    const afterSeq = this.totals.lastSeq;
    if (this.replayedEnd) {
      // The session had ended; only its last seal was lost. Damaged records before its end still
      // leave holes, declared after the end (no seq is free before it).
      this.ending = RESOLVED;
      this.endedAtMs = Date.now();
      this.endReason = 'ended (sealed after writer restart)';
      this.writeHoleGaps(losses);
      this.sealNow(true);
      await this.chain;
      return;
    }
    this.writeControl('recording.recovered', {
      reason:
        'writer restarted without ending the session; unsealed events were replayed from the spool journal',
      lastSealedSeq: this.sealedTotals.lastSeq,
      recoveredEvents: losses.recoveredEvents,
      tornRecords: losses.tornRecords,
      tornBytes: losses.tornBytes,
      ...(losses.restoredStart ? { restoredStart: true } : {}),
    });
    this.writeHoleGaps(losses);
    if (losses.tail) {
      this.writeGap({
        cause: 'torn-record',
        reason: `journal record cut at crash: ${losses.tail.why}`,
        afterSeq,
        events: losses.tail.records,
        bytes: losses.tail.bytes,
      });
    }
    const bound = this.maxUnsettledAppends;
    this.writeGap({
      cause: 'crash',
      reason:
        `the writer stopped without ending the session: events after seq ${afterSeq} that were not yet ` +
        `durable in the spool journal are missing, at most ${bound} (the writer's bound on ` +
        'unacknowledged appends per session)',
      afterSeq,
      events: 0,
      maxEvents: bound,
      bytes: 0,
    });
    await this.end({ reason: 'recovered: the writer stopped before the session ended' });
  }

  /** Seq ranges that damaged journal stretches cost: one signed gap each. */
  private writeHoleGaps(losses: RecoveryLosses): void {
    for (const h of losses.holes) {
      this.writeGap({
        cause: 'torn-record',
        reason: `journal records unreadable (${h.why}); events ${h.fromSeq}..${h.toSeq} are lost`,
        fromSeq: h.fromSeq,
        toSeq: h.toSeq,
        events: h.toSeq - h.fromSeq + 1,
        bytes: h.bytes,
      });
    }
  }

  private writeGap(gap: Gap): void {
    this.totals.gaps++;
    this.totals.lostEvents += gap.events;
    this.writeControl('recording.gap', gap);
  }

  sealNow(final: boolean): void {
    if (this.segEvents === 0) return;
    const rawBytes = this.seg.length;
    const snap: Snapshot = {
      raw: this.seg.take(),
      rawBytes,
      firstSeq: this.segFirstSeq,
      lastSeq: this.segLastSeq,
      events: this.segEvents,
      firstWallMs: this.segFirstWall,
      lastWallMs: this.segLastWall,
      journalBytes: this.segJournalBytes,
      final,
      totals: structuredClone(this.totals),
    };
    const journalNo = this.segJournalNo;
    this.segEvents = 0;
    this.segJournalBytes = 0;
    this.inflightJournalNos.push(journalNo);
    this.host.sealBacklog(rawBytes);
    this.chain = this.chain.then(() => this.seal(snap));
  }

  private state(totals: SessionTotals): SessionState {
    return {
      version: 1,
      header: this.header,
      date: this.location.date,
      namespace: this.location.namespace,
      nextIndex: this.nextIndex,
      prevSha256: this.prevSha,
      status: this.status,
      ended: this.status !== 'open',
      ...(this.endedAtMs !== undefined ? { endedAtMs: this.endedAtMs } : {}),
      ...(this.endReason !== undefined ? { endReason: this.endReason } : {}),
      maxUnsettledAppends: this.maxUnsettledAppends,
      totals,
    };
  }

  indexBytes(): Buffer {
    const index = buildIndex(
      {
        header: this.header,
        date: this.location.date,
        namespace: this.location.namespace,
        status: this.status,
        ...(this.endedAtMs !== undefined ? { endedAtMs: this.endedAtMs } : {}),
        ...(this.endReason !== undefined ? { endReason: this.endReason } : {}),
        totals: this.sealedTotals,
      },
      this.host.key,
    );
    return encodeIndex(index);
  }

  private async seal(snap: Snapshot): Promise<void> {
    const rawHash = createHash('sha256');
    for (const c of snap.raw) rawHash.update(c);
    const rawSha256 = rawHash.digest('hex');
    const compressed = await this.host.compressor.compress(snap.raw);
    recycleChunks(snap.raw);
    snap.raw = [];
    this.host.sealBacklog(-snap.rawBytes);
    const sha256 = hex(compressed);
    const index = this.nextIndex;
    const manifest = encodeManifest(
      buildManifest(
        {
          sessionId: this.sessionId,
          index,
          firstSeq: snap.firstSeq,
          lastSeq: snap.lastSeq,
          events: snap.events,
          firstWallMs: snap.firstWallMs,
          lastWallMs: snap.lastWallMs,
          bytes: compressed.length,
          sha256,
          rawBytes: snap.rawBytes,
          rawSha256,
          prevSha256: this.prevSha,
          final: snap.final,
          sealedAt: new Date().toISOString(),
        },
        this.host.key,
      ),
    );
    snap.totals.segments = index;
    snap.totals.lastSegmentSha256 = sha256;
    snap.totals.lastSeq = snap.lastSeq;
    this.nextIndex = index + 1;
    this.prevSha = sha256;
    this.sealedTotals = snap.totals;
    if (snap.final) this.status = this.endStatus;
    const refreshIndex = snap.final || Date.now() - this.lastIndexWrite >= this.host.indexRefreshMs;
    for (let attempt = 0; ; attempt++) {
      try {
        await this.host.spool.writeSealed(this.sessionId, index, compressed, manifest);
        await this.host.spool.writeState(this.state(snap.totals));
        if (refreshIndex) await this.host.spool.writeIndex(this.sessionId, this.indexBytes());
        break;
      } catch (err) {
        // Local disk trouble: keep the snapshot in memory and retry; the journal still holds it.
        this.host.log.error(
          { err: (err as Error).message, sessionId: this.sessionId, index },
          'cannot persist sealed segment; retrying',
        );
        await new Promise((r) => setTimeout(r, Math.min(5000, 100 * 2 ** attempt)));
      }
    }
    if (refreshIndex) this.lastIndexWrite = Date.now();
    this.inflightJournalNos.shift();
    this.host.sealed(this, snap.journalBytes, compressed.length + manifest.length, index);
    if (refreshIndex) this.host.uploader.indexChanged(this.sessionId);
    if (snap.final) this.host.finished(this);
  }

  /** Writes the index of a just-started session to the spool (uploaded before any segment). */
  async writeInitialIndex(): Promise<void> {
    this.lastIndexWrite = Date.now();
    await this.host.spool.writeIndex(this.sessionId, this.indexBytes());
    this.host.uploader.indexChanged(this.sessionId);
  }

  startRecording(): Promise<void> {
    this.writeControl('session.start', this.header as unknown as Record<string, unknown>);
    return this.host.journal.commit();
  }

  /** failClosed: writes waiting events while the spool has room, in order. */
  drainWaiting(): void {
    while (this.waiting.length > 0 && !this.host.isFull()) {
      const w = this.waiting.shift()!;
      this.write(w.input, w.wallMs, w.monoNs).then(w.resolve, w.reject);
    }
    if (this.waiting.length === 0) {
      this.host.unblocked(this);
      const ws = this.drainedWaiters;
      this.drainedWaiters = [];
      for (const w of ws) w();
    }
  }

  /** Recorder closing past its deadline: events that never got into the spool are refused. */
  rejectWaiting(err: Error): void {
    const ws = this.waiting;
    this.waiting = [];
    for (const w of ws) w.reject(err);
    this.drainWaiting();
  }

  private drained(): Promise<void> {
    if (this.waiting.length === 0) return RESOLVED;
    return new Promise((resolve) => this.drainedWaiters.push(resolve));
  }

  end(summary: { reason: string; counts?: Record<string, number> }): Promise<void> {
    if (this.ending) return this.ending;
    this.ending = (async () => {
      await this.drained();
      if (this.gap) this.flushGap();
      this.endedAtMs = Date.now();
      this.endReason = String(summary?.reason ?? 'ended');
      this.writeControl('session.end', {
        reason: this.endReason,
        ...(summary?.counts ? { counts: summary.counts } : {}),
        events: this.totals.events,
        rawBytes: this.totals.rawBytes,
        gaps: this.totals.gaps,
        lostEvents: this.totals.lostEvents,
        recovered: this.endStatus === 'recovered',
      });
      const committed = this.host.journal.commit();
      this.sealNow(true);
      await committed;
      await this.chain;
    })();
    return this.ending;
  }

  /** Resolves when every seal queued so far is persisted in the spool. */
  settled(): Promise<void> {
    return this.chain;
  }
}

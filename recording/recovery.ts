// Crash recovery. reconcileSealed: the state file of a session folder is written after the sealed
// segment it describes, so a crash in between leaves a newer segment than the state knows; the
// segment (signed, on disk) wins and the totals are recounted from its events. JournalReplay: the
// old journal's records go back into the sessions left open, and what could not be read back
// becomes the seq ranges their gap events declare.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { zstdDecompress } from 'node:zlib';
import type { Logger } from 'pino';
import { buildIndex, encodeIndex } from './index-record.ts';
import type { JournalEntry } from './journal.ts';
import type { SigningKey } from './keys.ts';
import { manifestName, segmentName } from './layout.ts';
import { SegmentManifestSchema } from './manifest.ts';
import type { SessionState, Spool } from './spool.ts';

const decompress = promisify(zstdDecompress);

export async function reconcileSealed(
  spool: Spool,
  sessionId: string,
  key: SigningKey,
  log: Logger,
): Promise<SessionState | undefined> {
  let state: SessionState | undefined;
  try {
    state = await spool.readState(sessionId);
  } catch (err) {
    log.error(
      { sessionId, err: (err as Error).message },
      'unreadable session state in spool; leaving the folder untouched',
    );
    return undefined;
  }
  if (!state) {
    // Created but never written to: nothing of value inside.
    if ((await spool.listSealed(sessionId)).length === 0) await spool.removeSession(sessionId);
    else log.error({ sessionId }, 'sealed segments without session state in spool; leaving them untouched');
    return undefined;
  }
  let changed = false;
  for (const index of await spool.listSealed(sessionId)) {
    if (index < state.nextIndex) continue;
    const dir = spool.sessionDir(sessionId);
    const manifest = SegmentManifestSchema.parse(
      JSON.parse(await readFile(join(dir, manifestName(index)), 'utf8')),
    );
    const raw = await decompress(await readFile(join(dir, segmentName(index))));
    const t = state.totals;
    for (const text of raw.toString('utf8').split('\n')) {
      if (!text) continue;
      const ev = JSON.parse(text) as {
        seq: number;
        wallMs: number;
        kind: string;
        payload: Record<string, unknown>;
      };
      t.events++;
      t.rawBytes += Buffer.byteLength(text) + 1;
      t.countsByKind[ev.kind] = (t.countsByKind[ev.kind] ?? 0) + 1;
      if (ev.kind === 'recording.gap') {
        t.gaps++;
        t.lostEvents += typeof ev.payload.events === 'number' ? ev.payload.events : 0;
      }
      if (ev.kind === 'session.end') {
        state.endedAtMs = ev.wallMs;
        state.endReason = String(ev.payload.reason ?? 'ended');
      }
    }
    t.segments = index;
    t.lastSeq = manifest.lastSeq;
    t.lastSegmentSha256 = manifest.sha256;
    state.nextIndex = index + 1;
    state.prevSha256 = manifest.sha256;
    if (manifest.final) {
      state.ended = true;
      state.status = state.status === 'open' ? 'ended' : state.status;
    }
    changed = true;
  }
  if (changed) {
    log.warn(
      { sessionId, nextIndex: state.nextIndex },
      'spool state was behind its sealed segments; reconciled',
    );
    await spool.writeState(state);
    if (state.ended) {
      const index = buildIndex(
        {
          header: state.header,
          date: state.date,
          namespace: state.namespace,
          status: state.status,
          ...(state.endedAtMs !== undefined ? { endedAtMs: state.endedAtMs } : {}),
          ...(state.endReason !== undefined ? { endReason: state.endReason } : {}),
          totals: state.totals,
        },
        key,
      );
      await spool.writeIndex(sessionId, encodeIndex(index));
    }
  }
  return state;
}

/** What replaying the old journals found missing in one session. */
export interface RecoveryLosses {
  /** Records replayed into the session (above its last sealed seq). */
  recoveredEvents: number;
  /** Seqs missing between readable records of the session, with the damaged bytes around them. */
  holes: { fromSeq: number; toSeq: number; bytes: number; why: string }[];
  /** Damaged stretches that name this session after its last readable record (a cut last write). */
  tail?: { records: number; bytes: number; why: string };
  /** Damaged stretches counted for this session (holes and tail) and their bytes. */
  tornRecords: number;
  tornBytes: number;
  /** `session.start` (seq 0) did not read back and was written again from the spool state's header. */
  restoredStart?: boolean;
}

/** The part of a SessionWriter that journal replay drives. */
export interface ReplayTarget {
  readonly lastSealedSeq: number;
  /** Seq 0 (`session.start`) is missing: write it again from the header kept in the spool state. */
  ensureStart(): void;
  /** Puts a journaled event line back into the open segment; returns what it is. */
  replay(line: Buffer, seq: number): { kind: string; payload: Record<string, unknown> | undefined };
}

interface Stretch {
  bytes: number;
  why: string;
  sessionId: string | undefined;
  explained: boolean;
}

interface Progress {
  /** The next seq a record of this session should carry. */
  expected: number;
  /** Number of damaged stretches seen when the session's last record (replayed or not) was read. */
  stretchesBefore: number;
  replayed: number;
  holes: RecoveryLosses['holes'];
  tornRecords: number;
  tornBytes: number;
  restoredStart: boolean;
}

/**
 * Replays old journal entries (in file order) into the sessions being recovered, and works out what
 * damaged stretches cost each session. A session's records are journaled in seq order, so a seq
 * that jumps marks lost records; the damaged stretches read since the session's previous record
 * hold them. A jump that a `recording.gap` record explains (failOpen dropped those seqs) is no loss.
 */
export class JournalReplay {
  private readonly targets: ReadonlyMap<string, ReplayTarget>;
  private readonly stretches: Stretch[] = [];
  private readonly progress = new Map<string, Progress>();

  constructor(targets: ReadonlyMap<string, ReplayTarget>) {
    this.targets = targets;
  }

  private progressOf(sessionId: string, target: ReplayTarget): Progress {
    let p = this.progress.get(sessionId);
    if (!p) {
      p = {
        expected: target.lastSealedSeq + 1,
        stretchesBefore: 0,
        replayed: 0,
        holes: [],
        tornRecords: 0,
        tornBytes: 0,
        restoredStart: false,
      };
      this.progress.set(sessionId, p);
    }
    return p;
  }

  add(entry: JournalEntry): void {
    if (entry.type === 'torn') {
      this.stretches.push({
        bytes: entry.bytes,
        why: entry.why,
        sessionId: entry.sessionId,
        explained: false,
      });
      return;
    }
    const target = this.targets.get(entry.sessionId);
    if (!target) return;
    const p = this.progressOf(entry.sessionId, target);
    const since = p.stretchesBefore;
    p.stretchesBefore = this.stretches.length;
    // Already sealed (older journal files live until every session has sealed past them), or a
    // record read twice: nothing to replay.
    if (entry.seq < p.expected) return;
    const damaged = this.stretches.slice(since);
    if (p.expected === 0 && entry.seq > 0) {
      target.ensureStart();
      p.restoredStart = true;
      p.expected = 1;
      this.blame(p, damaged);
    }
    const missing = entry.seq > p.expected ? { from: p.expected, to: entry.seq - 1 } : undefined;
    const what = target.replay(entry.line, entry.seq);
    p.replayed++;
    p.expected = entry.seq + 1;
    if (!missing) return;
    let ranges = [missing];
    const g = what.kind === 'recording.gap' ? what.payload : undefined;
    if (typeof g?.fromSeq === 'number' && typeof g.toSeq === 'number') {
      const [from, to] = [g.fromSeq, g.toSeq];
      ranges = ranges.flatMap((r) =>
        [
          { from: r.from, to: Math.min(r.to, from - 1) },
          { from: Math.max(r.from, to + 1), to: r.to },
        ].filter((x) => x.from <= x.to),
      );
    }
    if (ranges.length === 0) return;
    const bytes = this.blame(p, damaged);
    const why = damaged[0]?.why ?? 'records missing from the journal';
    // The stretch's bytes are told once, with the first range.
    ranges.forEach((r, i) => {
      p.holes.push({ fromSeq: r.from, toSeq: r.to, bytes: i === 0 ? bytes : 0, why });
    });
  }

  /** Counts damaged stretches (not yet counted) as this session's; returns their bytes. */
  private blame(p: Progress, damaged: Stretch[]): number {
    let bytes = 0;
    for (const s of damaged) {
      if (s.explained) continue;
      s.explained = true;
      p.tornRecords++;
      bytes += s.bytes;
    }
    p.tornBytes += bytes;
    return bytes;
  }

  lossesOf(sessionId: string): RecoveryLosses {
    const target = this.targets.get(sessionId);
    const p = target ? this.progressOf(sessionId, target) : undefined;
    const losses: RecoveryLosses = {
      recoveredEvents: p?.replayed ?? 0,
      holes: p?.holes ?? [],
      tornRecords: p?.tornRecords ?? 0,
      tornBytes: p?.tornBytes ?? 0,
      ...(p?.restoredStart ? { restoredStart: true } : {}),
    };
    // Stretches after the session's last record that still read as this session's: its last writes.
    const tail = this.stretches
      .slice(p?.stretchesBefore ?? 0)
      .filter((s) => !s.explained && s.sessionId === sessionId);
    if (tail.length > 0) {
      const bytes = tail.reduce((n, s) => n + s.bytes, 0);
      losses.tail = { records: tail.length, bytes, why: tail[0]!.why };
      losses.tornRecords += tail.length;
      losses.tornBytes += bytes;
    }
    return losses;
  }
}

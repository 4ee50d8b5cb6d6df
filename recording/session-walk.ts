// Walks one session in the store segment by segment, checking every link of the evidence: manifest
// signature, place in the chain, object size and SHA-256, the events inside. Events stream out
// while a segment is decompressed (its compressed bytes were already checked against the signed
// manifest), so memory stays at about one segment however long the session is.
import { createHash } from 'node:crypto';
import { createZstdDecompress } from 'node:zlib';
import { RecordingError, SessionNotFoundError } from './errors.ts';
import { DirectionSchema, type RecordedEvent } from './events.ts';
import { type SessionIndex, SessionIndexSchema } from './index-record.ts';
import { checkSignature, type TrustedKey } from './keys.ts';
import {
  assertSessionId,
  indexKey,
  manifestName,
  parseSegmentName,
  pointerKey,
  type SessionLocation,
  segmentName,
  sessionPrefix,
} from './layout.ts';
import { type SegmentManifest, SegmentManifestSchema } from './manifest.ts';
import type { SegmentStore } from './stores/store.ts';

export type VerifyReason =
  | 'session-not-found'
  | 'segment-missing'
  | 'segment-tampered'
  | 'segment-truncated'
  | 'segment-reordered'
  | 'segment-foreign'
  | 'chain-broken'
  | 'manifest-invalid'
  | 'bad-signature'
  | 'wrong-key'
  | 'events-invalid'
  | 'session-truncated'
  | 'index-tampered'
  | 'index-mismatch';

export class VerificationError extends RecordingError {
  override name = 'VerificationError';
  readonly reason: VerifyReason;
  readonly segment: number | undefined;
  readonly key: string | undefined;
  constructor(reason: VerifyReason, message: string, where: { segment?: number; key?: string } = {}) {
    super(`${reason}: ${where.segment !== undefined ? `segment ${where.segment}: ` : ''}${message}`);
    this.reason = reason;
    this.segment = where.segment;
    this.key = where.key;
  }
}

const hex = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** Gap events a walk keeps for its report (the count covers all of them). */
export const MAX_GAP_EVENTS = 1000;

/** Finds where a session lives: its pointer object, else a scan of the index and sessions folders. */
export async function locateSession(
  store: SegmentStore,
  sessionId: string,
): Promise<SessionLocation | undefined> {
  assertSessionId(sessionId);
  const pointer = await store.get(pointerKey(sessionId));
  if (pointer) {
    try {
      const p = JSON.parse(pointer.toString('utf8')) as Partial<SessionLocation>;
      if (p.sessionId === sessionId && typeof p.date === 'string' && typeof p.namespace === 'string') {
        return { sessionId, date: p.date, namespace: p.namespace };
      }
    } catch {
      // fall through to scanning
    }
  }
  for await (const dateFolder of store.listFolders('sessions/')) {
    const date = /date=([^/]+)\/$/.exec(dateFolder)?.[1];
    if (!date) continue;
    for await (const nsFolder of store.listFolders(dateFolder)) {
      const namespace = /namespace=([^/]+)\/$/.exec(nsFolder)?.[1];
      if (!namespace) continue;
      for await (const _ of store.list(`${nsFolder}session=${sessionId}/`))
        return { sessionId, date, namespace };
    }
  }
  for await (const key of store.list('index/')) {
    const m = /^index\/date=([^/]+)\/namespace=([^/]+)\/([^/]+)\.json$/.exec(key);
    if (m && m[3] === sessionId) return { sessionId, date: m[1]!, namespace: m[2]! };
  }
  return undefined;
}

export interface WalkOptions {
  /** Check signatures against these keys; without them only hashes and the chain are checked. */
  trusted?: readonly TrustedKey[];
  /** Also check the index object against the segments. */
  checkIndex?: boolean;
}

interface SegmentEntry {
  segment: boolean;
  manifest: boolean;
}

export class SessionWalk {
  readonly store: SegmentStore;
  readonly sessionId: string;
  private readonly options: WalkOptions;
  location: SessionLocation | undefined;
  segments = 0;
  eventCount = 0;
  final = false;
  recovered = false;
  gaps = 0;
  lostEvents = 0;
  lastSha: string | null = null;
  lastSeq = -1;
  readonly keyIds = new Set<string>();
  readonly warnings: string[] = [];
  /** The session's `recording.gap` events (the first MAX_GAP_EVENTS), for reports. */
  readonly gapEvents: RecordedEvent[] = [];
  index: SessionIndex | undefined;
  header: Record<string, unknown> | undefined;
  private holes: { from: number; to: number }[] = [];

  constructor(store: SegmentStore, sessionId: string, options: WalkOptions = {}) {
    this.store = store;
    this.sessionId = sessionId;
    this.options = options;
  }

  private async manifestAt(prefix: string, index: number): Promise<SegmentManifest | undefined> {
    const bytes = await this.store.get(prefix + manifestName(index));
    if (!bytes) return undefined;
    try {
      return SegmentManifestSchema.parse(JSON.parse(bytes.toString('utf8')));
    } catch {
      return undefined;
    }
  }

  async *events(): AsyncGenerator<RecordedEvent> {
    const loc = await locateSession(this.store, this.sessionId);
    if (!loc) throw new SessionNotFoundError(`session ${this.sessionId} not found in ${this.store.url}`);
    this.location = loc;
    const prefix = sessionPrefix(loc);
    const entries = new Map<number, SegmentEntry>();
    let maxIndex = 0;
    for await (const key of this.store.list(prefix)) {
      const parsed = parseSegmentName(key.slice(prefix.length));
      if (!parsed) continue;
      const e = entries.get(parsed.index) ?? { segment: false, manifest: false };
      e[parsed.part] = true;
      entries.set(parsed.index, e);
      maxIndex = Math.max(maxIndex, parsed.index);
    }
    if (maxIndex === 0) {
      const index = await this.readIndex(loc);
      if (!index) throw new SessionNotFoundError(`session ${this.sessionId} not found in ${this.store.url}`);
      if (index.segments > 0) {
        throw new VerificationError(
          'session-truncated',
          `the index lists ${index.segments} segments but none exist`,
          {
            key: prefix,
          },
        );
      }
      this.warnings.push('no segment uploaded yet');
      return;
    }
    let prevSha: string | null = null;
    let prevLastSeq = -1;
    for (let i = 1; i <= maxIndex; i++) {
      const entry = entries.get(i);
      const mKey = prefix + manifestName(i);
      const sKey = prefix + segmentName(i);
      if (this.final) {
        throw new VerificationError(
          'chain-broken',
          `segment ${i - 1} is marked final but segment ${i} follows`,
          { segment: i, key: mKey },
        );
      }
      if (!entry?.manifest) {
        throw new VerificationError(
          'segment-missing',
          entry?.segment ? 'its manifest is missing' : 'segment and manifest are missing',
          {
            segment: i,
            key: mKey,
          },
        );
      }
      const mBytes = await this.store.get(mKey);
      if (!mBytes)
        throw new VerificationError('segment-missing', 'its manifest is missing', { segment: i, key: mKey });
      let raw: Record<string, unknown>;
      try {
        raw = JSON.parse(mBytes.toString('utf8'));
        if (typeof raw !== 'object' || raw === null) throw new Error('not an object');
      } catch (err) {
        throw new VerificationError('manifest-invalid', `manifest is not JSON: ${(err as Error).message}`, {
          segment: i,
          key: mKey,
        });
      }
      if (this.options.trusted) {
        const sig = checkSignature(raw, this.options.trusted);
        if (!sig.ok)
          throw new VerificationError(sig.reason, `manifest ${sig.message}`, { segment: i, key: mKey });
      }
      const parsed = SegmentManifestSchema.safeParse(raw);
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        throw new VerificationError(
          'manifest-invalid',
          `manifest field ${issue?.path.join('.')}: ${issue?.message}`,
          {
            segment: i,
            key: mKey,
          },
        );
      }
      const m = parsed.data;
      this.keyIds.add(m.keyId);
      if (m.sessionId !== this.sessionId) {
        throw new VerificationError('segment-foreign', `manifest belongs to session ${m.sessionId}`, {
          segment: i,
          key: mKey,
        });
      }
      if (m.index !== i) {
        throw new VerificationError(
          'segment-reordered',
          `object ${manifestName(i)} holds the manifest of segment ${m.index}`,
          {
            segment: i,
            key: mKey,
          },
        );
      }
      if (m.prevSha256 !== prevSha) {
        throw new VerificationError(
          'chain-broken',
          `previous-segment hash ${m.prevSha256} does not match ${prevSha ?? 'the session start (null)'}`,
          {
            segment: i,
            key: mKey,
          },
        );
      }
      if (m.firstSeq <= prevLastSeq || m.lastSeq < m.firstSeq) {
        throw new VerificationError(
          'chain-broken',
          `sequence range ${m.firstSeq}..${m.lastSeq} does not follow ${prevLastSeq}`,
          {
            segment: i,
            key: mKey,
          },
        );
      }
      if (!entry.segment)
        throw new VerificationError('segment-missing', 'segment object is missing', {
          segment: i,
          key: sKey,
        });
      const body = await this.store.get(sKey);
      if (!body)
        throw new VerificationError('segment-missing', 'segment object is missing', {
          segment: i,
          key: sKey,
        });
      const sha = hex(body);
      if (sha !== m.sha256) {
        const neighbours = await Promise.all([
          i > 1 ? this.manifestAt(prefix, i - 1) : undefined,
          this.manifestAt(prefix, i + 1),
        ]);
        const match = neighbours.find((n) => n?.sha256 === sha);
        if (match) {
          throw new VerificationError(
            'segment-reordered',
            `object ${segmentName(i)} holds the bytes of segment ${match.index}`,
            {
              segment: i,
              key: sKey,
            },
          );
        }
        if (body.length < m.bytes) {
          throw new VerificationError(
            'segment-truncated',
            `segment has ${body.length} of its ${m.bytes} bytes`,
            { segment: i, key: sKey },
          );
        }
        throw new VerificationError(
          'segment-tampered',
          `segment SHA-256 ${sha} differs from the signed ${m.sha256}`,
          {
            segment: i,
            key: sKey,
          },
        );
      }
      yield* this.segmentEvents(body, m, i, sKey);
      this.segments = i;
      this.lastSha = sha;
      this.lastSeq = m.lastSeq;
      this.final = m.final;
      prevSha = sha;
      prevLastSeq = m.lastSeq;
    }
    if (this.holes.length > 0) {
      const h = this.holes[0]!;
      throw new VerificationError(
        'events-invalid',
        `events ${h.from}..${h.to} are missing and no gap event accounts for them`,
      );
    }
    if (this.options.checkIndex) await this.checkIndex(loc);
    if (!this.final)
      this.warnings.push(
        'session not ended: still recording, or its writer stopped and was not recovered yet',
      );
  }

  private async *segmentEvents(
    body: Buffer,
    m: SegmentManifest,
    i: number,
    key: string,
  ): AsyncGenerator<RecordedEvent> {
    const fail = (msg: string) => new VerificationError('events-invalid', msg, { segment: i, key });
    const dec = createZstdDecompress();
    const rawHash = createHash('sha256');
    let rawBytes = 0;
    let carry = '';
    let count = 0;
    let expected = m.firstSeq;
    let lastSeq = -1;
    const onLine = (text: string): RecordedEvent => {
      let ev: RecordedEvent;
      try {
        ev = JSON.parse(text);
      } catch {
        throw fail(`line ${count + 1} is not JSON`);
      }
      if (
        typeof ev !== 'object' ||
        ev === null ||
        !Number.isSafeInteger(ev.seq) ||
        typeof ev.kind !== 'string' ||
        typeof ev.wallMs !== 'number' ||
        typeof ev.monoNs !== 'string' ||
        !DirectionSchema.options.includes(ev.direction) ||
        typeof ev.payload !== 'object' ||
        ev.payload === null
      ) {
        throw fail(`line ${count + 1} is not an event`);
      }
      if (ev.seq < expected) throw fail(`event seq ${ev.seq} out of order (expected at least ${expected})`);
      if (ev.seq > expected) this.holes.push({ from: expected, to: ev.seq - 1 });
      expected = ev.seq + 1;
      lastSeq = ev.seq;
      count++;
      if (i === 1 && count === 1) {
        if (
          ev.kind !== 'session.start' ||
          ev.seq !== 0 ||
          (ev.payload as { sessionId?: unknown }).sessionId !== this.sessionId
        ) {
          throw fail('the first event is not the session.start header of this session');
        }
        this.header = ev.payload;
      }
      if (ev.kind === 'recording.gap') {
        this.gaps++;
        if (this.gapEvents.length < MAX_GAP_EVENTS) this.gapEvents.push(ev);
        const p = ev.payload as { fromSeq?: unknown; toSeq?: unknown; events?: unknown };
        if (typeof p.events === 'number') this.lostEvents += p.events;
        if (typeof p.fromSeq === 'number' && typeof p.toSeq === 'number') {
          const { fromSeq, toSeq } = p;
          this.holes = this.holes.filter((h) => h.from < fromSeq || h.to > toSeq);
        }
      }
      if (ev.kind === 'recording.recovered') this.recovered = true;
      this.eventCount++;
      return ev;
    };
    dec.end(body);
    for await (const chunk of dec as AsyncIterable<Buffer>) {
      rawHash.update(chunk);
      rawBytes += chunk.length;
      const text = carry + chunk.toString('utf8');
      const lines = text.split('\n');
      carry = lines.pop() ?? '';
      for (const line of lines) yield onLine(line);
    }
    if (carry.length > 0) throw fail('the last line has no newline (segment content cut)');
    if (rawBytes !== m.rawBytes || rawHash.digest('hex') !== m.rawSha256) {
      throw fail('decompressed content does not match the manifest (rawBytes/rawSha256)');
    }
    if (count !== m.events || lastSeq !== m.lastSeq) {
      throw fail(
        `holds ${count} events ending at seq ${lastSeq}; the manifest says ${m.events} ending at ${m.lastSeq}`,
      );
    }
  }

  private async readIndex(loc: SessionLocation): Promise<SessionIndex | undefined> {
    const key = indexKey(loc);
    const bytes = await this.store.get(key);
    if (!bytes) return undefined;
    const line = bytes.toString('utf8').split('\n')[0] ?? '';
    let raw: Record<string, unknown>;
    try {
      raw = JSON.parse(line);
    } catch {
      throw new VerificationError('index-tampered', 'index object is not JSON', { key });
    }
    if (this.options.trusted) {
      const sig = checkSignature(raw, this.options.trusted);
      if (!sig.ok) {
        throw new VerificationError(
          sig.reason === 'wrong-key' ? 'wrong-key' : 'index-tampered',
          `index ${sig.message}`,
          { key },
        );
      }
    }
    const parsed = SessionIndexSchema.safeParse(raw);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new VerificationError(
        'index-tampered',
        `index field ${issue?.path.join('.')}: ${issue?.message}`,
        { key },
      );
    }
    this.index = parsed.data;
    return parsed.data;
  }

  private async checkIndex(loc: SessionLocation): Promise<void> {
    const key = indexKey(loc);
    const index = await this.readIndex(loc);
    if (!index) {
      this.warnings.push('index object missing');
      return;
    }
    const mismatch = (what: string) => new VerificationError('index-mismatch', what, { key });
    if (index.sessionId !== this.sessionId || index.date !== loc.date || index.namespace !== loc.namespace) {
      throw mismatch(
        `index names session ${index.sessionId} (${index.date}/${index.namespace}), stored at ${loc.date}/${loc.namespace}`,
      );
    }
    const h = (this.header ?? {}) as {
      identity?: Record<string, unknown>;
      target?: { name?: string };
      startedAtMs?: number;
    };
    const same = (a: unknown, b: unknown) => (a ?? null) === (b ?? null);
    if (
      !same(index.subject, h.identity?.subject) ||
      !same(index.pod, h.identity?.pod) ||
      !same(index.serviceAccount, h.identity?.serviceAccount) ||
      !same(index.targetName, h.target?.name) ||
      !same(index.startedAtMs, h.startedAtMs)
    ) {
      throw mismatch('index identity/target/start differ from the signed session header');
    }
    if (index.segments > this.segments) {
      throw new VerificationError(
        'session-truncated',
        `the index lists ${index.segments} segments but only ${this.segments} exist (the tail is missing)`,
        { key },
      );
    }
    if (index.status !== 'open' && !this.final) {
      throw new VerificationError(
        'session-truncated',
        `the index says the session ${index.status} but its final segment is missing`,
        {
          key,
        },
      );
    }
    if (index.segments === this.segments && index.lastSegmentSha256 !== this.lastSha) {
      throw mismatch('index last-segment hash differs from the last segment');
    }
    if (index.segments < this.segments)
      this.warnings.push(`index is older than the segments (lists ${index.segments} of ${this.segments})`);
  }
}

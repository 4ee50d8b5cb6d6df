// Reading and verifying recordings: what the CLI and auditors use.
import { SessionNotFoundError } from './errors.ts';
import type { RecordedEvent } from './events.ts';
import { type SessionIndex, SessionIndexSchema } from './index-record.ts';
import { checkSignature, loadPublicKeys, type PublicKeysInput, type TrustedKey } from './keys.ts';
import { indexKey, partitionDate } from './layout.ts';
import { locateSession, SessionWalk, VerificationError, type VerifyReason } from './session-walk.ts';
import type { SegmentStore } from './stores/store.ts';

export interface SessionFilter {
  namespace?: string;
  /** Pod name; `*` matches any run of characters. */
  pod?: string;
  /** Token subject or service account; `*` wildcards. */
  subject?: string;
  /** Who launched the workload (attribution); `*` wildcards. */
  launcher?: string;
  /** Target name; `*` wildcards. */
  target?: string;
  /** Sessions that started at or after / at or before (Date, epoch ms or ISO string). */
  since?: Date | number | string;
  until?: Date | number | string;
  /** Keep only index objects whose signature verifies with these keys. */
  publicKeys?: PublicKeysInput;
}

export interface ListedSession extends SessionIndex {
  /** Present when the filter had public keys: the index signature verified. */
  signatureVerified?: boolean;
}

function toMs(t: Date | number | string): number {
  const ms = t instanceof Date ? t.getTime() : typeof t === 'number' ? t : Date.parse(t);
  if (!Number.isFinite(ms)) throw new Error(`invalid time ${String(t)}`);
  return ms;
}

function globMatch(pattern: string | undefined, value: string | undefined): boolean {
  if (pattern === undefined) return true;
  if (value === undefined) return false;
  if (!pattern.includes('*')) return pattern === value;
  const re = new RegExp(
    `^${pattern
      .split('*')
      .map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
      .join('.*')}$`,
  );
  return re.test(value);
}

/** Sessions from the index objects, by start date then id (ids are time-ordered). */
export async function* listSessions(
  store: SegmentStore,
  filter: SessionFilter = {},
): AsyncIterable<ListedSession> {
  const sinceMs = filter.since !== undefined ? toMs(filter.since) : undefined;
  const untilMs = filter.until !== undefined ? toMs(filter.until) : undefined;
  const sinceDay = sinceMs !== undefined ? partitionDate(sinceMs) : undefined;
  const untilDay = untilMs !== undefined ? partitionDate(untilMs) : undefined;
  const trusted = filter.publicKeys ? loadPublicKeys(filter.publicKeys) : undefined;
  for await (const dateFolder of store.listFolders('index/')) {
    const date = /date=([^/]+)\/$/.exec(dateFolder)?.[1];
    if (!date || (sinceDay && date < sinceDay) || (untilDay && date > untilDay)) continue;
    for await (const nsFolder of store.listFolders(dateFolder)) {
      const namespace = /namespace=([^/]+)\/$/.exec(nsFolder)?.[1];
      if (!namespace || (filter.namespace !== undefined && namespace !== filter.namespace)) continue;
      for await (const key of store.list(nsFolder)) {
        if (!key.endsWith('.json')) continue;
        const bytes = await store.get(key);
        if (!bytes) continue;
        const line = bytes.toString('utf8').split('\n')[0] ?? '';
        let raw: Record<string, unknown>;
        try {
          raw = JSON.parse(line);
        } catch {
          continue;
        }
        const parsed = SessionIndexSchema.safeParse(raw);
        if (!parsed.success) continue;
        const s: ListedSession = parsed.data;
        if (trusted) {
          s.signatureVerified = checkSignature(raw, trusted).ok;
          if (!s.signatureVerified) continue;
        }
        if (!globMatch(filter.pod, s.pod)) continue;
        if (
          filter.subject !== undefined &&
          !globMatch(filter.subject, s.subject) &&
          !globMatch(filter.subject, s.serviceAccount)
        )
          continue;
        if (!globMatch(filter.target, s.targetName)) continue;
        if (!globMatch(filter.launcher, s.launchedBy)) continue;
        if (sinceMs !== undefined && s.startedAtMs < sinceMs) continue;
        if (untilMs !== undefined && s.startedAtMs > untilMs) continue;
        yield s;
      }
    }
  }
}

/** The index object of one session (unverified), or undefined. */
export async function getSessionIndex(
  store: SegmentStore,
  sessionId: string,
): Promise<SessionIndex | undefined> {
  const loc = await locateSession(store, sessionId);
  if (!loc) return undefined;
  const bytes = await store.get(indexKey(loc));
  if (!bytes) return undefined;
  const parsed = SessionIndexSchema.safeParse(JSON.parse(bytes.toString('utf8').split('\n')[0] ?? 'null'));
  return parsed.success ? parsed.data : undefined;
}

export interface ReadOptions {
  /** Verify manifest signatures too (hashes and chain are always checked). */
  publicKeys?: PublicKeysInput;
}

/**
 * Streams a session's events in order with constant memory. Throws VerificationError at the first
 * segment that fails a check, SessionNotFoundError when the session does not exist.
 */
export async function* readSession(
  store: SegmentStore,
  sessionId: string,
  opts: ReadOptions = {},
): AsyncIterable<RecordedEvent> {
  const trusted = opts.publicKeys ? loadPublicKeys(opts.publicKeys) : undefined;
  const walk = new SessionWalk(store, sessionId, trusted ? { trusted } : {});
  yield* walk.events();
}

export interface VerifyReport {
  sessionId: string;
  ok: boolean;
  /** The last segment is marked final (the session ended and nothing is missing at its end). */
  complete: boolean;
  recovered: boolean;
  segments: number;
  events: number;
  gaps: number;
  lostEvents: number;
  /** The `recording.gap` events themselves (signed, in the chain), up to 1000. */
  gapEvents: RecordedEvent[];
  keyIds: string[];
  warnings: string[];
  failure?: { reason: VerifyReason; segment?: number; key?: string; message: string };
  location?: { date: string; namespace: string };
}

export async function verifySession(
  store: SegmentStore,
  sessionId: string,
  publicKeys: PublicKeysInput,
): Promise<VerifyReport> {
  const trusted: TrustedKey[] = loadPublicKeys(publicKeys);
  const walk = new SessionWalk(store, sessionId, { trusted, checkIndex: true });
  let failure: VerifyReport['failure'];
  try {
    for await (const _ of walk.events()) {
      // Every event is checked as it streams by.
    }
  } catch (err) {
    if (err instanceof VerificationError) {
      failure = {
        reason: err.reason,
        ...(err.segment !== undefined ? { segment: err.segment } : {}),
        ...(err.key !== undefined ? { key: err.key } : {}),
        message: err.message,
      };
    } else if (err instanceof SessionNotFoundError) {
      failure = { reason: 'session-not-found', message: err.message };
    } else {
      throw err;
    }
  }
  return {
    sessionId,
    ok: failure === undefined,
    complete: failure === undefined && walk.final,
    recovered: walk.recovered || walk.index?.recovered === true,
    segments: walk.segments,
    events: walk.eventCount,
    gaps: walk.gaps,
    lostEvents: walk.lostEvents,
    gapEvents: walk.gapEvents,
    keyIds: [...walk.keyIds],
    warnings: walk.warnings,
    ...(failure ? { failure } : {}),
    ...(walk.location ? { location: { date: walk.location.date, namespace: walk.location.namespace } } : {}),
  };
}

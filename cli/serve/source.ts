// The viewer's only way to the recordings: a read-only store, the session listing (kept in memory
// and filtered there with listSessions' meaning; seeded from the Parquet search index when the
// store has one, so only sessions `index build` has not compacted are read as index objects),
// events read with hashes, chain and signatures checked, and the last verification report per session.

import {
  getSessionIndex,
  type ListedSession,
  type RecordedEvent,
  readSession,
  type SegmentStore,
  type SessionIndex,
  SessionIndexSchema,
  type VerifyReport,
  verifySession,
} from '../../recording/index.ts';
import type { SessionRow } from '../search/columns.ts';
import { indexPartitions, mapLimit, PARQUET_ROOT, readPartition } from '../search/partitions.ts';

/** The store with its write method removed: the viewer has no write path to recordings. */
export function readOnly(store: SegmentStore): SegmentStore {
  return {
    url: store.url,
    get: (key) => store.get(key),
    list: (prefix) => store.list(prefix),
    listFolders: (prefix) => store.listFolders(prefix),
    put: async () => {
      throw new Error('the viewer is read-only: it never writes to the store');
    },
  };
}

export interface ViewerFilter {
  namespace?: string;
  pod?: string;
  subject?: string;
  target?: string;
  /** Epoch ms. */
  since?: number;
  until?: number;
}

export interface SessionPage {
  sessions: ListedSession[];
  /** Matching sessions in all pages. */
  total: number;
  offset: number;
  limit: number;
}

export interface SourceOptions {
  /** How long a listing stays cached (ms). */
  listingTtlMs?: number;
  /** Index objects read at once when listing. */
  concurrency?: number;
  /** How many verification reports are kept. */
  verifyCacheSize?: number;
  now?: () => number;
}

function glob(pattern: string | undefined, value: string | undefined): boolean {
  if (pattern === undefined) return true;
  if (value === undefined) return false;
  if (!pattern.includes('*')) return pattern === value;
  const parts = pattern.split('*').map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&'));
  return new RegExp(`^${parts.join('.*')}$`).test(value);
}

const newestFirst = (a: ListedSession, b: ListedSession) =>
  b.startedAtMs - a.startedAtMs || (a.sessionId < b.sessionId ? 1 : -1);

/**
 * The sessions a filter keeps, with listSessions' meaning (a test holds the two equal): namespace
 * exact, pod / subject (or service account) / target with * wildcards, start time within the range.
 */
export function filterSessions(all: readonly ListedSession[], f: ViewerFilter): ListedSession[] {
  const subject = f.subject;
  return all.filter(
    (s) =>
      (f.namespace === undefined || s.namespace === f.namespace) &&
      glob(f.pod, s.pod) &&
      (subject === undefined || glob(subject, s.subject) || glob(subject, s.serviceAccount)) &&
      glob(f.target, s.targetName) &&
      (f.since === undefined || s.startedAtMs >= f.since) &&
      (f.until === undefined || s.startedAtMs <= f.until),
  );
}

async function indexKeys(store: SegmentStore): Promise<string[]> {
  const keys: string[] = [];
  for await (const date of store.listFolders('index/')) {
    if (!/date=[^/]+\/$/.test(date)) continue;
    for await (const ns of store.listFolders(date)) {
      if (!/namespace=[^/]+\/$/.test(ns)) continue;
      for await (const key of store.list(ns)) if (key.endsWith('.json')) keys.push(key);
    }
  }
  return keys;
}

/**
 * The index objects of a store, kept by key. The first refresh reads them all, `concurrency` GETs
 * at a time (listSessions reads one after another: minutes for 10,000 sessions in S3); later ones
 * list the keys and read only new objects and those of sessions still open (an ended or recovered
 * session's index object is final).
 */
export class IndexCache {
  readonly #store: SegmentStore;
  readonly #concurrency: number;
  #byKey = new Map<string, ListedSession>();
  #seeded = false;
  /** Index-object GETs made by the last refresh (for tests and figures). */
  lastReads = 0;
  /** Sessions the last refresh took from Parquet partitions instead of index objects. */
  fromParquet = 0;

  /** `parquet: false` reads every index object even when the store has a search index. */
  constructor(store: SegmentStore, concurrency = 32, parquet = true) {
    this.#store = store;
    this.#concurrency = Math.max(1, concurrency);
    this.#seeded = !parquet;
  }

  async refresh(): Promise<ListedSession[]> {
    this.fromParquet = 0;
    if (!this.#seeded) {
      this.#seeded = true;
      this.fromParquet = await this.#seedFromParquet();
    }
    const keys = await indexKeys(this.#store);
    const toRead = keys.filter(
      (k) => this.#byKey.get(k)?.status !== 'ended' && this.#byKey.get(k)?.status !== 'recovered',
    );
    const read = new Map<string, ListedSession | undefined>();
    let next = 0;
    const worker = async () => {
      while (next < toRead.length) {
        const key = toRead[next++]!;
        read.set(key, parseIndex(await this.#store.get(key)));
      }
    };
    await Promise.all(Array.from({ length: this.#concurrency }, worker));
    this.lastReads = toRead.length;
    const byKey = new Map<string, ListedSession>();
    for (const k of keys) {
      const s = read.has(k) ? read.get(k) : this.#byKey.get(k);
      if (s) byKey.set(k, s);
    }
    this.#byKey = byKey;
    return [...byKey.values()];
  }

  /**
   * First refresh only, when the store has a search index: every ended or recovered session of
   * the Parquet partitions (what `sessions search` answers from), so the listing below reads just
   * the index objects the last `index build` did not see or saw while open. Partitions that are
   * missing or unreadable are skipped: their index objects are read instead.
   */
  async #seedFromParquet(): Promise<number> {
    const folders = this.#store.listFolders(PARQUET_ROOT)[Symbol.asyncIterator]();
    const any = await folders.next();
    await folders.return?.();
    if (any.done) return 0;
    const partitions = [];
    for await (const p of indexPartitions(this.#store)) partitions.push(p);
    const parts = await mapLimit(partitions, 8, (p) => readPartition(this.#store, p));
    let seeded = 0;
    for (const rows of parts)
      for (const r of rows ?? []) {
        if (r.status === 'open') continue; // Read afresh from its index object.
        this.#byKey.set(
          `index/date=${r.date}/namespace=${r.namespace}/${r.session_id}.json`,
          sessionOfRow(r),
        );
        seeded++;
      }
    return seeded;
  }
}

/**
 * A search-index row as the listing's session (the inverse of cli/search's rowOf). The index
 * object's fields that the row does not keep are zero or empty here: rawBytes, lastSeq,
 * lastSegmentSha256, keyFingerprint, signature and policy.generation (the list page shows none of
 * them; a session's page and its verification read the index object itself).
 */
export function sessionOfRow(r: SessionRow): ListedSession {
  const opt = <K extends string>(k: K, v: string | null) => (v === null ? {} : { [k]: v });
  return {
    format: 'chaperone.index/v1',
    sessionId: r.session_id,
    date: r.date,
    namespace: r.namespace,
    status: r.status as SessionIndex['status'],
    recovered: r.status === 'recovered',
    startedAt: r.started_at.toISOString(),
    startedAtMs: r.started_at.getTime(),
    ...(r.ended_at ? { endedAt: r.ended_at.toISOString(), endedAtMs: r.ended_at.getTime() } : {}),
    ...opt('endReason', r.end_reason),
    protocol: r.protocol,
    target: { name: r.target_name, host: r.target_host, port: r.target_port },
    targetName: r.target_name,
    ...opt('subject', r.subject),
    ...opt('issuer', r.issuer),
    ...opt('serviceAccount', r.service_account),
    ...opt('pod', r.pod),
    ...opt('podUid', r.pod_uid),
    ...opt('node', r.node),
    ...opt('source', r.source),
    ...opt('launchedBy', r.launched_by),
    ...(r.policy_name !== null
      ? { policy: { name: r.policy_name, ...opt('namespace', r.policy_namespace) } }
      : {}),
    sidecarVersion: r.sidecar_version,
    labels: JSON.parse(r.labels) as Record<string, string>,
    events: Number(r.events),
    rawBytes: 0,
    segments: r.segments,
    lastSeq: 0,
    lastSegmentSha256: null,
    gaps: r.gaps,
    lostEvents: Number(r.lost_events),
    countsByKind: JSON.parse(r.counts_by_kind) as Record<string, number>,
    commands: { total: Number(r.commands_total), sample: r.commands },
    updatedAt: r.updated_at.toISOString(),
    keyId: r.key_id,
    keyFingerprint: '',
    signature: '',
  };
}

function parseIndex(bytes: Buffer | undefined): ListedSession | undefined {
  if (!bytes) return undefined;
  try {
    const parsed = SessionIndexSchema.safeParse(JSON.parse(bytes.toString('utf8').split('\n')[0] ?? ''));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined; // Not an index object: listSessions skips it too.
  }
}

/** Every index object of the store: what listSessions(store) yields without a filter. */
export function loadIndex(store: SegmentStore, concurrency = 32): Promise<ListedSession[]> {
  return new IndexCache(store, concurrency).refresh();
}

/** A verification report and when it was made. */
export type CheckedReport = VerifyReport & { checkedAtMs: number };

const stampOf = (s: SessionIndex) => `${s.updatedAt}/${s.lastSegmentSha256}`;
// A session listed from the Parquet index has no lastSegmentSha256 (null): its index object is
// final (ended or recovered), so its updatedAt alone names the version a report was made for.
const sameVersion = (stamp: string, s: SessionIndex) =>
  stamp === stampOf(s) || (s.lastSegmentSha256 === null && stamp.startsWith(`${s.updatedAt}/`));

interface CachedListing {
  at: number;
  sessions: Promise<ListedSession[]>;
}

export class SessionSource {
  readonly #store: SegmentStore;
  readonly #keys: string[];
  readonly #ttl: number;
  readonly #verifySize: number;
  readonly #index: IndexCache;
  readonly #now: () => number;
  #all: CachedListing | undefined;
  #refreshing: Promise<ListedSession[]> | undefined;
  readonly #verified = new Map<string, { stamp: string; report: CheckedReport }>();

  constructor(store: SegmentStore, publicKeys: string[], options: SourceOptions = {}) {
    this.#store = readOnly(store);
    this.#keys = publicKeys;
    this.#ttl = options.listingTtlMs ?? 30_000;
    this.#verifySize = options.verifyCacheSize ?? 10_000;
    this.#index = new IndexCache(this.#store, options.concurrency ?? 32);
    this.#now = options.now ?? Date.now;
  }

  get storeUrl(): string {
    return this.#store.url;
  }

  /** One page of the matching sessions, newest first. */
  async page(filter: ViewerFilter, offset: number, limit: number): Promise<SessionPage> {
    const all = await this.#listing();
    const matching = filterSessions(all, filter);
    return { sessions: matching.slice(offset, offset + limit), total: matching.length, offset, limit };
  }

  /** Starts reading the listing now (the server calls it at start so the first page is quick). */
  warm(): void {
    this.#listing().catch(() => {});
  }

  /**
   * Every session of the index, newest first, read once and then refreshed in the background when
   * older than the TTL (the previous listing answers meanwhile); filters apply in memory.
   */
  #listing(): Promise<ListedSession[]> {
    const cached = this.#all;
    if (cached && this.#now() - cached.at < this.#ttl) return cached.sessions;
    const sessions = this.#index.refresh().then((found) => found.sort(newestFirst));
    const entry = { at: this.#now(), sessions };
    sessions.then(
      () => {
        this.#all = entry;
        this.#refreshing = undefined;
      },
      () => {
        this.#refreshing = undefined;
      },
    );
    if (!cached) {
      this.#all = entry;
      sessions.catch(() => {
        if (this.#all === entry) this.#all = undefined;
      });
      return sessions;
    }
    // Stale: refresh once in the background, answer from the previous listing.
    if (!this.#refreshing) this.#refreshing = sessions;
    return cached.sessions;
  }

  index(sessionId: string): Promise<SessionIndex | undefined> {
    return getSessionIndex(this.#store, sessionId);
  }

  /** The session's events; throws VerificationError at the first segment that fails a check. */
  events(sessionId: string): AsyncIterable<RecordedEvent> {
    return readSession(this.#store, sessionId, { publicKeys: this.#keys });
  }

  /**
   * Checksums, chain and signatures of the whole session with the configured keys, always read
   * afresh (a segment can be altered after an earlier check); the report is kept for the list page.
   */
  async verify(sessionId: string, index?: SessionIndex): Promise<CheckedReport> {
    const report = await verifySession(this.#store, sessionId, this.#keys);
    const checked = { ...report, checkedAtMs: this.#now() };
    this.#verified.delete(sessionId);
    if (index) this.#verified.set(sessionId, { stamp: stampOf(index), report: checked });
    while (this.#verified.size > this.#verifySize) this.#verified.delete(this.#verified.keys().next().value!);
    return checked;
  }

  /** A report already computed for this session, if its index has not changed since. */
  knownVerification(s: SessionIndex): CheckedReport | undefined {
    const hit = this.#verified.get(s.sessionId);
    return hit && sameVersion(hit.stamp, s) ? hit.report : undefined;
  }
}

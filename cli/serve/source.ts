// The viewer's only way to the recordings: a read-only store, the session listing (today the
// index objects through listSessions; the Parquet search can replace `list` here alone), events
// read with hashes, chain and signatures checked, and verification reports cached per session.
import {
  getSessionIndex,
  type ListedSession,
  listSessions,
  type RecordedEvent,
  readSession,
  type SegmentStore,
  type SessionFilter,
  type SessionIndex,
  type VerifyReport,
  verifySession,
} from '../../recording/index.ts';

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
  /** How many distinct filters keep a cached listing. */
  listingCacheSize?: number;
  /** How many verification reports are kept. */
  verifyCacheSize?: number;
  now?: () => number;
}

/** A verification report and when it was made. */
export type CheckedReport = VerifyReport & { checkedAtMs: number };

const stampOf = (s: SessionIndex) => `${s.updatedAt}/${s.lastSegmentSha256}`;

interface CachedListing {
  at: number;
  sessions: Promise<ListedSession[]>;
}

export class SessionSource {
  readonly #store: SegmentStore;
  readonly #keys: string[];
  readonly #ttl: number;
  readonly #listingSize: number;
  readonly #verifySize: number;
  readonly #now: () => number;
  readonly #listings = new Map<string, CachedListing>();
  readonly #verified = new Map<string, { stamp: string; report: CheckedReport }>();

  constructor(store: SegmentStore, publicKeys: string[], options: SourceOptions = {}) {
    this.#store = readOnly(store);
    this.#keys = publicKeys;
    this.#ttl = options.listingTtlMs ?? 30_000;
    this.#listingSize = options.listingCacheSize ?? 32;
    this.#verifySize = options.verifyCacheSize ?? 10_000;
    this.#now = options.now ?? Date.now;
  }

  get storeUrl(): string {
    return this.#store.url;
  }

  /** One page of the matching sessions, newest first. */
  async page(filter: ViewerFilter, offset: number, limit: number): Promise<SessionPage> {
    const all = await this.#listing(filter);
    return { sessions: all.slice(offset, offset + limit), total: all.length, offset, limit };
  }

  #listing(filter: ViewerFilter): Promise<ListedSession[]> {
    const key = JSON.stringify(filter, Object.keys(filter).sort());
    const cached = this.#listings.get(key);
    if (cached && this.#now() - cached.at < this.#ttl) return cached.sessions;
    const sessions = (async () => {
      const found: ListedSession[] = [];
      for await (const s of listSessions(this.#store, filter as SessionFilter)) found.push(s);
      return found.sort((a, b) => b.startedAtMs - a.startedAtMs || (a.sessionId < b.sessionId ? 1 : -1));
    })();
    this.#listings.delete(key);
    this.#listings.set(key, { at: this.#now(), sessions });
    sessions.catch(() => this.#listings.delete(key));
    while (this.#listings.size > this.#listingSize)
      this.#listings.delete(this.#listings.keys().next().value!);
    return sessions;
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
    return hit && hit.stamp === stampOf(s) ? hit.report : undefined;
  }
}

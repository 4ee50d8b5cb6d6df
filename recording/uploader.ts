// Background uploads from the spool to the store. Per session, in order: sealed segments (segment
// object, then its manifest), then the pending index. Failures retry with exponential backoff,
// shared by all workers so an outage is not hammered; local files go only after the store
// confirmed them. Nothing remote is ever deleted.
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import {
  indexKey,
  manifestName,
  pointerKey,
  type SessionLocation,
  segmentName,
  sessionPrefix,
} from './layout.ts';
import type { Spool } from './spool.ts';
import type { PutOptions, SegmentStore } from './stores/store.ts';

export interface UploaderOptions {
  concurrency: number;
  minBackoffMs: number;
  maxBackoffMs: number;
  retention?: { mode: 'GOVERNANCE' | 'COMPLIANCE'; days: number };
}

interface SessionQueue {
  location: SessionLocation;
  segments: number[]; // ascending
  sizes: Map<number, number>;
  indexPending: boolean;
  ended: boolean;
  running: boolean;
}

export interface UploaderHooks {
  /** Bytes of a sealed segment + manifest the store now holds (no longer counted as spooled). */
  uploaded(bytes: number): void;
  log: Logger;
}

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest();

export class Uploader {
  private readonly store: SegmentStore;
  private readonly spool: Spool;
  private readonly options: UploaderOptions;
  private readonly hooks: UploaderHooks;
  private readonly queues = new Map<string, SessionQueue>();
  private active = 0;
  private backoffMs = 0;
  private retryAt = 0;
  private idleWaiters: (() => void)[] = [];
  private stopped = false;
  private wakers = new Set<() => void>();
  healthy = true;
  lastError: string | undefined;
  unhealthySince: number | undefined;
  uploadedObjects = 0;

  constructor(store: SegmentStore, spool: Spool, options: UploaderOptions, hooks: UploaderHooks) {
    this.store = store;
    this.spool = spool;
    this.options = options;
    this.hooks = hooks;
  }

  track(sessionId: string, location: SessionLocation): void {
    if (!this.queues.has(sessionId)) {
      this.queues.set(sessionId, {
        location,
        segments: [],
        sizes: new Map(),
        indexPending: false,
        ended: false,
        running: false,
      });
    }
  }

  segmentSealed(sessionId: string, index: number, bytes: number): void {
    const q = this.queues.get(sessionId);
    if (!q) return;
    q.segments.push(index);
    q.sizes.set(index, bytes);
    this.pump();
  }

  indexChanged(sessionId: string): void {
    const q = this.queues.get(sessionId);
    if (!q) return;
    q.indexPending = true;
    this.pump();
  }

  sessionEnded(sessionId: string): void {
    const q = this.queues.get(sessionId);
    if (!q) return;
    q.ended = true;
    this.pump();
  }

  get pendingSegments(): number {
    let n = 0;
    for (const q of this.queues.values()) n += q.segments.length;
    return n;
  }

  private hasWork(q: SessionQueue): boolean {
    return q.segments.length > 0 || q.indexPending || q.ended;
  }

  private pump(): void {
    if (this.stopped) return;
    for (const [id, q] of this.queues) {
      if (this.active >= this.options.concurrency) return;
      if (q.running || !this.hasWork(q)) continue;
      q.running = true;
      this.active++;
      void this.work(id, q).finally(() => {
        q.running = false;
        this.active--;
        this.pump();
        this.notifyIdle();
      });
    }
    this.notifyIdle();
  }

  private notifyIdle(): void {
    if (this.active > 0) return;
    for (const q of this.queues.values()) if (this.hasWork(q)) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }

  /** Resolves true once nothing is left to upload, false if the deadline passes first. */
  async drain(deadlineMs: number): Promise<boolean> {
    const idle = new Promise<void>((resolve) => {
      this.idleWaiters.push(resolve);
    });
    this.pump();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), Math.max(0, deadlineMs - Date.now()));
    });
    const result = await Promise.race([idle.then(() => true as const), timeout]);
    clearTimeout(timer);
    return result;
  }

  stop(): void {
    this.stopped = true;
    for (const w of this.wakers) w();
  }

  private retention(): PutOptions['retention'] {
    const r = this.options.retention;
    return r ? { mode: r.mode, until: new Date(Date.now() + r.days * 86_400_000) } : undefined;
  }

  /** Runs `op` until it succeeds; waits out the shared backoff between attempts. */
  private async attempt(what: string, op: () => Promise<void>): Promise<boolean> {
    for (;;) {
      if (this.stopped) return false;
      const wait = this.retryAt - Date.now();
      if (wait > 0) {
        await new Promise<void>((resolve) => {
          const wake = () => {
            clearTimeout(t);
            this.wakers.delete(wake);
            resolve();
          };
          const t = setTimeout(wake, wait);
          this.wakers.add(wake);
        });
        continue;
      }
      try {
        await op();
        if (!this.healthy)
          this.hooks.log.info(
            { downMs: Date.now() - (this.unhealthySince ?? Date.now()) },
            'store reachable again',
          );
        this.healthy = true;
        this.unhealthySince = undefined;
        this.backoffMs = 0;
        return true;
      } catch (err) {
        const message = (err as Error).message;
        if (this.healthy) this.unhealthySince = Date.now();
        this.healthy = false;
        this.lastError = message;
        this.backoffMs = Math.min(
          this.options.maxBackoffMs,
          Math.max(this.options.minBackoffMs, this.backoffMs * 2),
        );
        const delay = Math.round(this.backoffMs * (0.5 + Math.random() / 2));
        this.retryAt = Math.max(this.retryAt, Date.now() + delay);
        this.hooks.log.warn({ err: message, retryInMs: delay }, `upload of ${what} failed; will retry`);
      }
    }
  }

  private async work(sessionId: string, q: SessionQueue): Promise<void> {
    const prefix = sessionPrefix(q.location);
    while (!this.stopped) {
      const index = q.segments[0];
      if (index !== undefined) {
        const ok = await this.attempt(`${sessionId} segment ${index}`, async () => {
          const { segment, manifest } = await this.spool.readSealed(sessionId, index);
          const retention = this.retention();
          await this.store.put(prefix + segmentName(index), segment, {
            sha256: sha256(segment),
            contentType: 'application/zstd',
            ifAbsent: true,
            ...(retention ? { retention } : {}),
          });
          await this.store.put(prefix + manifestName(index), manifest, {
            sha256: sha256(manifest),
            contentType: 'application/json',
            ifAbsent: true,
            ...(retention ? { retention } : {}),
          });
        });
        if (!ok) return;
        this.uploadedObjects += 2;
        await this.spool.removeSealed(sessionId, index);
        q.segments.shift();
        this.hooks.uploaded(q.sizes.get(index) ?? 0);
        q.sizes.delete(index);
        continue;
      }
      if (q.indexPending) {
        q.indexPending = false;
        let uploaded: Buffer | undefined;
        const ok = await this.attempt(`${sessionId} index`, async () => {
          const body = await this.spool.readIndex(sessionId);
          if (!body) return;
          const retention = this.retention();
          const pointer = Buffer.from(
            `${JSON.stringify({ sessionId, date: q.location.date, namespace: q.location.namespace })}\n`,
          );
          await this.store.put(pointerKey(sessionId), pointer, {
            sha256: sha256(pointer),
            contentType: 'application/json',
            ...(retention ? { retention } : {}),
          });
          await this.store.put(indexKey(q.location), body, {
            sha256: sha256(body),
            contentType: 'application/x-ndjson',
            ...(retention ? { retention } : {}),
          });
          uploaded = body;
        });
        if (!ok) {
          q.indexPending = true;
          return;
        }
        this.uploadedObjects += 2;
        if (uploaded && !(await this.spool.removeIndexIfSame(sessionId, uploaded))) q.indexPending = true;
        continue;
      }
      if (q.ended) {
        // Everything of an ended session is in the store: its spool folder can go.
        await this.spool.removeSession(sessionId);
        this.queues.delete(sessionId);
      }
      return;
    }
  }
}

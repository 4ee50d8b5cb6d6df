// What a SessionWriter needs from its recorder (kept as an interface to avoid an import cycle).
import type { Logger } from 'pino';
import type { Compressor } from './compressor.ts';
import type { Journal } from './journal.ts';
import type { SigningKey } from './keys.ts';
import type { Spool } from './spool.ts';
import type { Uploader } from './uploader.ts';

/** Session: the writer the host hears from (session-writer.ts's SessionWriter). */
export interface RecorderHost<Session> {
  readonly journal: Journal;
  readonly key: SigningKey;
  readonly spool: Spool;
  readonly uploader: Uploader;
  readonly log: Logger;
  readonly sealMaxBytes: number;
  readonly compressor: Compressor;
  readonly indexRefreshMs: number;
  readonly failMode: 'failClosed' | 'failOpen';
  /** Bound on a session's unacknowledged appends that callers keep (the crash gap's bound). */
  readonly maxUnsettledAppends: number;
  isFull(): boolean;
  /** Why the spool is full, for gap events and errors. */
  fullReason(): string;
  addSpooled(bytes: number): void;
  /** Raw bytes of sealed-but-not-yet-compressed snapshots changed by `delta`. */
  sealBacklog(delta: number): void;
  /** Resolves once the seal backlog is under its bound (immediately when it already is). */
  sealRoom(): Promise<void> | undefined;
  /** A segment is persisted in the spool: its journal bytes are replaced by the stored bytes. */
  sealed(session: Session, journalBytes: number, storedBytes: number, index: number): void;
  blocked(session: Session): void;
  unblocked(session: Session): void;
  gapOpened(session: Session): void;
  gapClosed(session: Session): void;
  /** The final segment is persisted. */
  finished(session: Session): void;
}

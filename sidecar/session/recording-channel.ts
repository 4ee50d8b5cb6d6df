// A session's recording as a gateway uses it: appends never block the data path one by one, but a
// session that runs too far ahead of the spool waits (backpressure), and a failing recording is
// reported once instead of per event. Shared by every protocol.
import type { Logger } from 'pino';
import type { SessionRecording } from '../server/modules.ts';

/** Appends acknowledged by one promise of the recorder. */
interface AppendGroup {
  promise: Promise<void>;
  events: number;
  done: boolean;
}

/** One event as the recorder takes it; built once, and queued as is while the channel is held. */
type EventInput = Parameters<SessionRecording['append']>[0];

export class RecordingChannel {
  private pending = 0;
  private holding = false;
  private readonly held: EventInput[] = [];
  private group: AppendGroup | undefined;
  private waiters: (() => void)[] = [];
  private readonly recording: SessionRecording | undefined;
  private readonly logger: Logger;
  private readonly maxPending: number;
  private readonly onFailure: (err: Error) => void;
  failed: Error | undefined;
  readonly counts: Record<string, number> = {};

  constructor(
    recording: SessionRecording | undefined,
    logger: Logger,
    maxPending: number,
    onFailure: (err: Error) => void,
  ) {
    this.recording = recording;
    this.logger = logger;
    this.maxPending = maxPending;
    this.onFailure = onFailure;
  }

  get sessionId(): string | undefined {
    return this.recording?.sessionId;
  }

  /**
   * urgent: the caller waits for this event to be durable before going on (durability strict), so
   * the recorder writes its group at once instead of after its commit window.
   */
  add(
    kind: string,
    direction: 'client' | 'server' | 'internal',
    payload: Record<string, unknown>,
    summary?: string,
    urgent = false,
  ): Promise<void> | undefined {
    this.counts[kind] = (this.counts[kind] ?? 0) + 1;
    if (!this.recording || this.failed) return undefined;
    const input: EventInput = { kind, direction, payload, summary, urgent };
    if (this.holding) {
      if (!urgent) {
        this.held.push(input);
        return undefined;
      }
      this.appendHeld(); // an event someone waits on goes after the ones before it
    }
    return this.append(input);
  }

  /**
   * Until release(), appends that nobody waits on are queued in order instead of encoded: a gateway
   * holds the channel while it handles one read and releases it once the read's bytes are written,
   * so the encoding of their events is not on the agent's (or the upstream's) wait. add() returns
   * undefined for a held event; urgent ones are appended at once, after those held before them.
   */
  hold(): void {
    this.holding = true;
  }

  /** Appends the held events, in order, and stops holding. */
  release(): void {
    this.holding = false;
    this.appendHeld();
  }

  private appendHeld(): void {
    const held = this.held;
    if (held.length === 0) return;
    try {
      for (const e of held) {
        if (this.failed) break;
        this.append(e);
      }
    } finally {
      held.length = 0;
    }
  }

  private append(input: EventInput): Promise<void> {
    this.pending++;
    const settled = (this.recording as SessionRecording).append(input);
    // The recorder acknowledges a whole group commit with one promise: count the events waiting on
    // it instead of attaching one reaction per event.
    const group = this.group;
    if (group && group.promise === settled && !group.done) {
      group.events++;
      return settled;
    }
    const next: AppendGroup = { promise: settled, events: 1, done: false };
    this.group = next;
    settled.then(
      () => this.settled(next),
      (err: Error) => this.rejected(next, err),
    );
    return settled;
  }

  /**
   * Adds an event and resolves once it is durable (recording.durability strict). A failed append
   * rejects, and the session ends through onFailure: nothing waits for a recording that broke.
   */
  durable(
    kind: string,
    direction: 'client' | 'server' | 'internal',
    payload: Record<string, unknown>,
    summary?: string,
  ): Promise<void> {
    const settled = this.add(kind, direction, payload, summary, true);
    if (settled) return settled;
    return this.failed ? Promise.reject(this.failed) : Promise.resolve();
  }

  private settled(group: AppendGroup): void {
    group.done = true;
    this.pending -= group.events;
    if (this.waiters.length > 0 && this.pending <= this.maxPending / 2) {
      const w = this.waiters;
      this.waiters = [];
      for (const resolve of w) resolve();
    }
  }

  private rejected(group: AppendGroup, err: Error): void {
    this.settled(group);
    if (this.failed) return;
    this.failed = err;
    this.logger.error({ err }, 'recording append failed');
    this.onFailure(err);
  }

  /** A promise to wait on when too many appends are unsettled; undefined (no allocation) otherwise. */
  backpressure(): Promise<void> | undefined {
    if (this.pending <= this.maxPending || this.failed) return undefined;
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Waits for every append, then writes the session end. */
  async end(reason: string): Promise<void> {
    this.release();
    if (!this.recording) return;
    while (this.pending > 0 && !this.failed) {
      await new Promise<void>((resolve) => this.waiters.push(resolve));
      if (this.pending > 0) await new Promise((r) => setTimeout(r, 5));
    }
    try {
      await this.recording.end({ reason, counts: this.counts });
    } catch (err) {
      this.logger.error({ err }, 'recording end failed');
    }
  }
}

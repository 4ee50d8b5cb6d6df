// The listener life every gateway (postgres, ssh, http, kubernetes) shares: bind the target's
// loopback port, keep the sessions accepted on it, stop accepting (a reload that removes or moves the
// target), and drain on shutdown (wait for sessions until a deadline, then terminate the rest). Each
// protocol brings its own server (net, ssh2, http/https) and accepts its connections itself, with
// whatever hook its hot path wants (postgres moves the accepted handle to direct reads), handing
// each new session to `track`.
import type { Server } from 'node:net';
import type { Logger } from 'pino';

/** The part of a target's runtime the listener reads (swapped on reload by `update`). */
export interface ListenerRuntime {
  target: { name: string; protocol: string; listenPort: number };
}

/** What the listener needs of a session: when it ends, and how to end it at the drain deadline. */
export interface ListenedSession {
  readonly done: Promise<unknown>;
  terminate(reason: string): Promise<unknown>;
}

export interface GatewayListenerOptions {
  /** Names the listener in logs (`<label> listener bound`, `terminating <label> sessions ...`). */
  label: string;
  logger: Logger;
  /** listen(2) backlog; Node's default (511) when unset. */
  backlog?: number;
}

export abstract class GatewayListener<
  R extends ListenerRuntime,
  S extends ListenedSession,
  V extends Server,
> {
  protected runtime: R;
  protected readonly server: V;
  private readonly options: GatewayListenerOptions;
  /** Sessions by the key their protocol looks them up with (the session itself unless given). */
  private readonly sessions = new Map<unknown, S>();
  private listening = false;

  protected constructor(runtime: R, server: V, options: GatewayListenerOptions) {
    this.runtime = runtime;
    this.server = server;
    this.options = options;
  }

  get target(): string {
    return this.runtime.target.name;
  }

  /** The port the config asked for. */
  get listenPort(): number {
    return this.runtime.target.listenPort;
  }

  get activeSessions(): number {
    return this.sessions.size;
  }

  get isListening(): boolean {
    return this.listening;
  }

  /** The bound port (useful with listenPort 0 in tests). */
  get port(): number {
    const a = this.server.address();
    return typeof a === 'object' && a ? a.port : this.runtime.target.listenPort;
  }

  /** New commands of every session (and new sessions) use this snapshot. */
  update(runtime: R): void {
    this.runtime = runtime;
  }

  /** Binds the target's port on `host`; resolves once `bound` (the protocol's own step) is done. */
  async listen(host: string): Promise<void> {
    const port = this.runtime.target.listenPort;
    const { backlog, label, logger } = this.options;
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen({ host, port, ...(backlog === undefined ? {} : { backlog }) }, () => {
        this.server.off('error', reject);
        this.listening = true;
        const { protocol } = this.runtime.target;
        logger.info({ target: this.target, protocol, host, port: this.port }, `${label} listener bound`);
        resolve();
      });
    });
    await this.bound();
  }

  /** Stops accepting; open sessions go on. */
  stopAccepting(): Promise<void> {
    if (!this.listening) return Promise.resolve();
    this.listening = false;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.closing();
    return closed;
  }

  /** Waits for sessions to end until the deadline, then terminates the rest. */
  async drain(deadlineMs: number, reason: string): Promise<void> {
    const closing = this.stopAccepting();
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      Promise.all([...this.sessions.values()].map((s) => s.done)).then(() => false),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(true), deadlineMs);
      }),
    ]);
    clearTimeout(timer);
    if (timedOut && this.sessions.size > 0) {
      this.options.logger.warn(
        { target: this.target, sessions: this.sessions.size },
        `terminating ${this.options.label} sessions still open at the deadline`,
      );
      await Promise.all([...this.sessions.values()].map((s) => s.terminate(reason)));
    }
    await closing;
  }

  /** Keeps an accepted session (under `key`, for protocols that look it up) until it is done. */
  protected track(session: S, key: unknown = session): void {
    this.sessions.set(key, session);
    session.done.then(() => this.sessions.delete(key));
  }

  /** The session tracked under `key`. */
  protected session(key: unknown): S | undefined {
    return this.sessions.get(key);
  }

  /** Hook: the protocol's step once the port is bound, before `listen` resolves. */
  protected bound(): Promise<void> {
    return Promise.resolve();
  }

  /** Hook: called right after close() (HTTP ends idle kept-alive connections that would hold it open). */
  protected closing(): void {}
}

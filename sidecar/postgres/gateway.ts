// One listener per postgres target: accepts agents on the loopback port, runs a session each, and
// drains them on shutdown or when the target is removed from the config.
import { createServer, type Server } from 'node:net';
import type { GatewayServices, PostgresRuntime } from './context.ts';
import { adoptWithDirectReads } from './direct-reads.ts';
import { PostgresSession } from './session.ts';

export class PostgresGateway {
  private runtime: PostgresRuntime;
  private readonly services: GatewayServices;
  private readonly server: Server;
  private readonly sessions = new Set<PostgresSession>();
  private listening = false;

  constructor(runtime: PostgresRuntime, services: GatewayServices) {
    this.runtime = runtime;
    this.services = services;
    // Accepted paused, so the agent's reads can move to a reused buffer before the first one.
    this.server = createServer({ noDelay: true, pauseOnConnect: true }, (accepted) => {
      const session = new PostgresSession(adoptWithDirectReads(accepted), () => this.runtime, this.services);
      this.sessions.add(session);
      session.done.then(() => this.sessions.delete(session));
    });
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

  /** New statements of every session (and new sessions) use this snapshot. */
  update(runtime: PostgresRuntime): void {
    this.runtime = runtime;
  }

  listen(host: string): Promise<void> {
    const port = this.runtime.target.listenPort;
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen({ host, port, backlog: 1024 }, () => {
        this.server.off('error', reject);
        this.listening = true;
        this.services.logger.info({ target: this.target, host, port }, 'postgres listener bound');
        resolve();
      });
    });
  }

  /** The bound port (useful with listenPort 0 in tests). */
  get port(): number {
    const a = this.server.address();
    return typeof a === 'object' && a ? a.port : this.runtime.target.listenPort;
  }

  /** Stops accepting; open sessions go on. */
  stopAccepting(): Promise<void> {
    if (!this.listening) return Promise.resolve();
    this.listening = false;
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  /** Waits for sessions to end until the deadline, then terminates the rest. */
  async drain(deadlineMs: number, reason: string): Promise<void> {
    const closing = this.stopAccepting();
    const all = () => Promise.all([...this.sessions].map((s) => s.done));
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      all().then(() => false),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(true), deadlineMs);
      }),
    ]);
    clearTimeout(timer);
    if (timedOut && this.sessions.size > 0) {
      this.services.logger.warn(
        { target: this.target, sessions: this.sessions.size },
        'terminating sessions still open at the deadline',
      );
      await Promise.all([...this.sessions].map((s) => s.terminate(reason)));
    }
    await closing;
  }
}

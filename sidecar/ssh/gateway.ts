// One listener per ssh target: an ssh2 server on the loopback port with the sidecar's own host key,
// a session per agent connection, drained on shutdown or when the target leaves the config.
import ssh2 from 'ssh2';
import type { SshRuntime, SshServices } from './context.ts';
import { nativeSshCrypto } from './crypto.ts';
import { SshSession } from './session.ts';

export class SshGateway {
  private runtime: SshRuntime;
  private readonly services: SshServices;
  private readonly server: ssh2.Server;
  private readonly sessions = new Set<SshSession>();
  private listening = false;

  constructor(runtime: SshRuntime, services: SshServices) {
    this.runtime = runtime;
    this.services = services;
    this.server = new ssh2.Server(
      {
        hostKeys: [runtime.hostKey],
        ident: 'chaperone',
      },
      (conn, info) => {
        const session = new SshSession(conn, `${info.ip}:${info.port}`, () => this.runtime, this.services);
        this.sessions.add(session);
        session.done.then(() => this.sessions.delete(session));
      },
    );
    this.server.on('error', (err: Error) => services.logger.warn({ err: err.message }, 'ssh listener error'));
    if (!nativeSshCrypto)
      services.logger.warn(
        { target: this.target },
        'ssh2 runs without its native crypto binding (sshcrypto.node did not load): SSH transfers cost about twice the CPU',
      );
  }

  get target(): string {
    return this.runtime.target.name;
  }

  get listenPort(): number {
    return this.runtime.target.listenPort;
  }

  get activeSessions(): number {
    return this.sessions.size;
  }

  get isListening(): boolean {
    return this.listening;
  }

  /** New commands of every session (and new sessions) use this snapshot. The host key stays. */
  update(runtime: SshRuntime): void {
    this.runtime = runtime;
  }

  listen(host: string): Promise<void> {
    const port = this.runtime.target.listenPort;
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        this.listening = true;
        this.services.logger.info({ target: this.target, host, port }, 'ssh listener bound');
        resolve();
      });
    });
  }

  get port(): number {
    const a = this.server.address();
    return typeof a === 'object' && a ? a.port : this.runtime.target.listenPort;
  }

  stopAccepting(): Promise<void> {
    if (!this.listening) return Promise.resolve();
    this.listening = false;
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  async drain(deadlineMs: number, reason: string): Promise<void> {
    const closing = this.stopAccepting();
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      Promise.all([...this.sessions].map((s) => s.done)).then(() => false),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(true), deadlineMs);
      }),
    ]);
    clearTimeout(timer);
    if (timedOut && this.sessions.size > 0) {
      this.services.logger.warn(
        { target: this.target, sessions: this.sessions.size },
        'terminating ssh sessions still open at the deadline',
      );
      await Promise.all([...this.sessions].map((s) => s.terminate(reason)));
    }
    await closing;
  }
}

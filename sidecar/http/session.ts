// One agent connection to an HTTP or Kubernetes target, on the session core (sidecar/session):
// the identity its token proves (login on the first request, checked again whenever the token
// changes on a kept-alive connection, watched for revocation), the recording that holds every
// exchange on that connection, and the command decider that blocks, alerts or holds requests.
// Exchanges themselves: exchange.ts and websocket.ts.
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { IdentityError } from '../server/modules.ts';
import { type Command, CommandDecider, type RecordingChannel, SessionCore } from '../session/index.ts';
import type { GatewayServices, HttpRuntime } from './context.ts';
import type { HttpDecision } from './guard.ts';

export class IdentityRefused extends Error {
  readonly status: number;
  constructor(message: string, status = 401) {
    super(message);
    this.status = status;
  }
}

export class HttpSession {
  readonly socket: Socket;
  readonly services: GatewayServices;
  readonly core: SessionCore;
  readonly decider: CommandDecider;
  private token: string | undefined;
  private loggedIn = false;
  private starting: Promise<void> | undefined;
  private exchanges = 0;
  private ended = false;
  private idle: (() => void) | undefined;
  readonly done: Promise<void>;
  private resolveDone!: () => void;
  /** Exchanges in flight; the recording ends after the last one. */
  private inFlight = 0;

  constructor(socket: Socket, runtime: () => HttpRuntime, services: GatewayServices) {
    this.socket = socket;
    this.services = services;
    const rt = runtime();
    this.core = new SessionCore(
      rt.kube ? 'kubernetes' : 'http',
      `${socket.remoteAddress}:${socket.remotePort}`,
      runtime,
      services,
    );
    this.decider = new CommandDecider(this.core);
    this.done = new Promise((resolve) => {
      this.resolveDone = resolve;
    });
    socket.once('close', () => void this.end('agent closed the connection'));
  }

  get logger(): Logger {
    return this.core.logger;
  }

  get rec(): RecordingChannel | undefined {
    return this.core.rec;
  }

  get subject(): string | undefined {
    return this.core.subject;
  }

  nextExchange(): string {
    return String(++this.exchanges);
  }

  /** Counts an exchange in flight; the returned function ends it. */
  begin(): () => void {
    this.inFlight++;
    return () => {
      if (--this.inFlight === 0) this.idle?.();
    };
  }

  /** Authenticates the token of a request; logs in (recording start) on the first one. */
  async authenticate(rt: HttpRuntime, token: string | undefined): Promise<void> {
    if (this.starting) await this.starting.catch(() => undefined);
    if (this.loggedIn && token === this.token) return;
    if (!this.loggedIn) {
      this.starting = this.login(rt, token);
      await this.starting;
      return;
    }
    // A refreshed token on a kept-alive connection: fine if it proves the same identity.
    let subject: string;
    try {
      subject = (await rt.verifier.authenticate(token, { source: this.core.source })).subject;
    } catch (err) {
      if (err instanceof IdentityError)
        throw new IdentityRefused(
          `chaperone: identity refused: ${err.message}`,
          err.code === 'denied' ? 403 : 401,
        );
      throw err;
    }
    if (subject !== this.core.subject)
      throw new IdentityRefused('chaperone: a different identity on the same connection');
    this.token = token;
    this.core.rec?.add('identity.refreshed', 'internal', { subject });
  }

  private async login(rt: HttpRuntime, token: string | undefined): Promise<void> {
    const r = await this.core.login({
      token,
      // The upstream credential is read per request (upstream.ts); nothing to hold per connection.
      readCredentials: async () => undefined,
      labels: () => ({ 'http.upstream': rt.upstream.origin }),
      refusedLabels: { 'http.upstream': rt.upstream.origin },
      maxPendingAppends: 1024,
      onRecordingFailure: () => this.socket.destroy(),
      live: () => !this.socket.destroyed,
    });
    switch (r.kind) {
      case 'ok':
        this.loggedIn = true;
        this.token = token;
        this.core.watchIdentity(r.identity, () => this.socket.destroy());
        return;
      case 'denied':
        throw new IdentityRefused(
          `chaperone: identity refused: ${r.message}`,
          r.code === 'denied' ? 403 : 401,
        );
      case 'noCredentials':
        throw new IdentityRefused(r.message, 502);
      case 'gone':
        throw new IdentityRefused('chaperone: the agent went away', 499);
    }
  }

  /** The guardrail's decision as the core applies it: undefined to forward, else the refusal. */
  decide(decision: HttpDecision, text: string, detail: Record<string, unknown>): Promise<string | undefined> {
    const cmd: Command = { text, noun: 'request', named: { request: text }, detail };
    return Promise.resolve(this.decider.decide(decision, cmd));
  }

  /** Records a refusal by a built-in rule (bad headers, ...). */
  refuse(rule: string, message: string, text: string): void {
    this.decider.refuse(rule, message, { text, noun: 'request', named: { request: text }, detail: {} });
  }

  /** Ends the recording once every exchange in flight has written its events. */
  async end(reason: string): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    this.decider.cancelApproval();
    await this.starting?.catch(() => undefined);
    if (this.inFlight > 0) await new Promise<void>((resolve) => (this.idle = resolve));
    await this.core.end(reason);
    this.resolveDone();
  }

  terminate(reason: string): Promise<void> {
    this.socket.destroy();
    return this.end(reason);
  }
}

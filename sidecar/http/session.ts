// One agent connection to an HTTP or Kubernetes target: the identity its token proves (checked on
// the first request, again whenever the token changes, and watched for revocation), and the
// recording that holds every exchange on that connection. Exchanges themselves: exchange.ts.
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { RecordingChannel } from '../postgres/record.ts';
import { type AgentIdentity, IdentityError, identityAttribution } from '../server/modules.ts';
import type { GatewayServices, HttpRuntime } from './context.ts';

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
  logger: Logger;
  rec: RecordingChannel | undefined;
  identity: AgentIdentity | undefined;
  private token: string | undefined;
  private starting: Promise<void> | undefined;
  private stopWatching: (() => void) | undefined;
  private exchanges = 0;
  approvals = 0;
  private ended = false;
  readonly done: Promise<void>;
  private resolveDone!: () => void;
  /** Exchanges in flight; the recording ends after the last one. */
  inFlight = 0;

  constructor(socket: Socket, services: GatewayServices) {
    this.socket = socket;
    this.services = services;
    this.logger = services.logger.child({ source: `${socket.remoteAddress}:${socket.remotePort}` });
    this.done = new Promise((resolve) => {
      this.resolveDone = resolve;
    });
    socket.once('close', () => void this.end('agent closed the connection'));
  }

  nextExchange(): string {
    return String(++this.exchanges);
  }

  /** Authenticates the token of a request; starts the recording on the first one. */
  async authenticate(rt: HttpRuntime, token: string | undefined): Promise<void> {
    if (this.starting) await this.starting.catch(() => undefined);
    if (this.identity && token === this.token) return;
    if (token === undefined && rt.tokenRequired)
      throw new IdentityRefused(`chaperone: a token is required (${rt.http.identityHeader} header)`);
    let identity: AgentIdentity;
    try {
      identity = await rt.verifier.authenticate(token, {
        source: `${this.socket.remoteAddress}:${this.socket.remotePort}`,
      });
    } catch (err) {
      if (err instanceof IdentityError) {
        rt.alerts.send({
          kind: err.code === 'denied' ? 'deniedSubject' : 'invalidToken',
          target: rt.target.name,
          ...(err.subject ? { subject: err.subject } : {}),
          message: `${rt.kube ? 'kubernetes' : 'http'} request refused: ${err.message}`,
        });
        throw new IdentityRefused(
          `chaperone: identity refused: ${err.message}`,
          err.code === 'denied' ? 403 : 401,
        );
      }
      throw err;
    }
    if (this.identity) {
      // A refreshed token on a kept-alive connection: fine if it is the same identity.
      if (identity.subject !== this.identity.subject)
        throw new IdentityRefused('chaperone: a different identity on the same connection', 401);
      this.token = token;
      this.rec?.add('identity.refreshed', 'internal', { subject: identity.subject });
      return;
    }
    this.starting = this.start(rt, identity);
    await this.starting;
    this.token = token;
  }

  private async start(rt: HttpRuntime, identity: AgentIdentity): Promise<void> {
    const { pod, recorder, sidecarVersion } = this.services;
    const recording = await recorder.startSession({
      protocol: rt.kube ? 'kubernetes' : 'http',
      target: { name: rt.target.name, host: rt.target.upstream.host, port: rt.target.upstream.port },
      identity: {
        subject: identity.subject,
        issuer: identity.issuer,
        claims: identity.claims,
        serviceAccount: identity.serviceAccount ?? pod.serviceAccount,
        pod: identity.pod ?? pod.pod,
        namespace: identity.namespace ?? pod.namespace,
        node: identity.node ?? pod.node,
        podUid: identity.podUid ?? pod.podUid,
        source: `${this.socket.remoteAddress}:${this.socket.remotePort}`,
        ...identityAttribution(identity),
      },
      policy: rt.policy,
      sidecarVersion,
      labels: { 'http.upstream': rt.upstream.origin },
    });
    this.identity = identity;
    this.rec = new RecordingChannel(recording, this.logger, 1024, () => this.socket.destroy());
    this.logger = this.logger.child({ sessionId: recording.sessionId, subject: identity.subject });
    for (const flag of identity.flags ?? []) {
      this.rec.add('identity.flagged', 'internal', { ...flag });
    }
    this.stopWatching = rt.verifier.watch(identity, (err) => {
      this.rec?.add('identity.revoked', 'internal', { subject: identity.subject, reason: err.message });
      rt.alerts.send({
        kind: 'identityRevoked',
        sessionId: recording.sessionId,
        subject: identity.subject,
        target: rt.target.name,
        message: `identity revoked mid-session: ${err.message}`,
      });
      this.socket.destroy();
    });
    if (this.ended) this.socket.destroy();
  }

  /** Ends the recording once every exchange in flight has written its events. */
  async end(reason: string): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    this.stopWatching?.();
    await this.starting?.catch(() => undefined);
    while (this.inFlight > 0) await new Promise((r) => setTimeout(r, 10));
    await this.rec?.end(reason);
    this.resolveDone();
  }

  terminate(reason: string): Promise<void> {
    this.socket.destroy();
    return this.end(reason);
  }
}

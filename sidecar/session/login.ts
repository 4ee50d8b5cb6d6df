// Login, the same for every protocol: identity (token or pod) -> upstream credentials -> recording
// start -> upstream connect. A refused identity is alerted and recorded as a session of its own
// before the gateway answers; a revoked identity ends the session through the gateway's callback.
import type { Logger } from 'pino';
import type { TargetMetrics } from '../server/metrics.ts';
import { type AgentIdentity, type AttributionChain, IdentityError } from '../server/modules.ts';
import type { CoreRuntime, CoreServices, Protocol } from './context.ts';
import { sessionHeader } from './header.ts';
import { RecordingChannel } from './recording-channel.ts';

export interface LoginRequest<C> {
  /** The token the agent presented (undefined: the pod's own identity). */
  token: string | undefined;
  /** Reads the upstream credentials (per connection, so a rotated Secret applies at once). */
  readCredentials: () => Promise<C>;
  /** Labels of the session header, once the credentials are known. */
  labels: (credentials: C) => Record<string, string>;
  /** Labels of a refused session's header. */
  refusedLabels?: Record<string, string>;
  /** Unsettled appends before the session waits for the spool. */
  maxPendingAppends: number;
  /** Called once when an append fails: the gateway must end the session. */
  onRecordingFailure: () => void;
  /** False once the agent went away during an await: login stops there. */
  live: () => boolean;
}

export type LoginResult<C> =
  | { kind: 'ok'; identity: AgentIdentity; credentials: C; rec: RecordingChannel }
  /** The identity was refused (already alerted and recorded); `code` is IdentityError's. */
  | { kind: 'denied'; code: string; message: string }
  /** The sidecar has no usable credentials for the target (already logged). */
  | { kind: 'noCredentials'; message: string }
  /** The agent left during login. */
  | { kind: 'gone' };

/** One agent connection's protocol-independent state: who it is, its recording, its logger. */
export class SessionCore {
  readonly protocol: Protocol;
  readonly source: string;
  readonly services: CoreServices;
  readonly metrics: TargetMetrics;
  readonly rt: () => CoreRuntime;
  logger: Logger;
  rec: RecordingChannel | undefined;
  subject: string | undefined;
  attribution: AttributionChain | undefined;
  private stopWatch: (() => void) | undefined;

  constructor(protocol: Protocol, source: string, runtime: () => CoreRuntime, services: CoreServices) {
    this.protocol = protocol;
    this.source = source;
    this.rt = runtime;
    this.services = services;
    const name = runtime().target.name;
    this.logger = services.logger.child({ target: name, source });
    this.metrics = services.metrics.forTarget(name);
  }

  async login<C>(req: LoginRequest<C>): Promise<LoginResult<C>> {
    const rt = this.rt();
    let identity: AgentIdentity;
    try {
      identity = await rt.verifier.authenticate(req.token, { source: this.source });
    } catch (err) {
      return this.denyIdentity(rt, err as Error, req.refusedLabels ?? {});
    }
    if (!req.live()) return { kind: 'gone' };
    this.subject = identity.subject;
    let credentials: C;
    try {
      credentials = await req.readCredentials();
    } catch (err) {
      this.logger.error({ err }, 'upstream credentials unavailable');
      return {
        kind: 'noCredentials',
        message: `chaperone: upstream credentials for target ${rt.target.name} are unavailable`,
      };
    }
    const recording = await this.services.recorder.startSession(
      sessionHeader({
        protocol: this.protocol,
        runtime: rt,
        services: this.services,
        source: this.source,
        identity,
        labels: req.labels(credentials),
      }),
    );
    const rec = new RecordingChannel(recording, this.logger, req.maxPendingAppends, req.onRecordingFailure);
    this.rec = rec;
    this.logger = this.logger.child({ sessionId: recording.sessionId, subject: identity.subject });
    this.attribution = identity.attribution;
    for (const flag of identity.flags ?? []) {
      rec.add('identity.flagged', 'internal', { ...flag });
      rt.alerts.send({
        kind: 'offboarded',
        sessionId: recording.sessionId,
        subject: flag.subject,
        target: rt.target.name,
        message: `${this.protocol} session allowed but flagged: ${flag.message}`,
        ...(this.attribution ? { attribution: this.attribution } : {}),
      });
    }
    if (!req.live()) return { kind: 'gone' };
    return { kind: 'ok', identity, credentials, rec };
  }

  /** Connects upstream through `connect`, timing it for the metrics. */
  async connectUpstream<U>(connect: () => Promise<U>): Promise<U> {
    const started = process.hrtime.bigint();
    const up = await connect();
    this.metrics.upstreamConnectSeconds(Number(process.hrtime.bigint() - started) / 1e9);
    return up;
  }

  /**
   * Identity liveness: a revoked or offboarded identity is recorded and alerted, then `end` (the
   * gateway's) closes the session with the message to give the agent.
   */
  watchIdentity(identity: AgentIdentity, end: (message: string, err: IdentityError) => void): void {
    const rt = this.rt();
    this.stopWatch = rt.verifier.watch(identity, (err) => {
      this.logger.warn(
        { code: err.code, message: err.message },
        'agent identity revoked; ending the session',
      );
      this.rec?.add('identity.revoked', 'internal', { code: err.code, message: err.message });
      rt.alerts.send({
        kind: err.code === 'offboarded' ? 'offboarded' : 'identityRevoked',
        sessionId: this.rec?.sessionId,
        subject: this.subject,
        target: rt.target.name,
        message: `${this.protocol} session ended: ${err.message}`,
        ...(err.attribution ? { attribution: err.attribution } : {}),
      });
      end(`chaperone: session ended, identity no longer valid: ${err.message}`, err);
    });
  }

  stopIdentityWatch(): void {
    this.stopWatch?.();
    this.stopWatch = undefined;
  }

  private async denyIdentity(
    rt: CoreRuntime,
    err: Error,
    labels: Record<string, string>,
  ): Promise<LoginResult<never>> {
    const code = err instanceof IdentityError ? err.code : 'unavailable';
    const message = err.message;
    this.logger.warn({ code, message }, 'agent identity refused');
    const attribution = err instanceof IdentityError ? err.attribution : undefined;
    rt.alerts.send({
      kind: code === 'denied' ? 'deniedSubject' : code === 'offboarded' ? 'offboarded' : 'invalidToken',
      target: rt.target.name,
      message: `${this.protocol} session refused: ${message}`,
      ...(err instanceof IdentityError && err.subject ? { subject: err.subject } : {}),
      ...(attribution ? { attribution } : {}),
    });
    try {
      const recording = await this.services.recorder.startSession(
        sessionHeader({
          protocol: this.protocol,
          runtime: rt,
          services: this.services,
          source: this.source,
          ...(attribution ? { attribution } : {}),
          labels,
        }),
      );
      await recording.append({ kind: 'identity.denied', direction: 'internal', payload: { code, message } });
      await recording.end({ reason: 'identity denied' });
    } catch (recErr) {
      this.logger.error({ err: recErr }, 'cannot record refused session');
    }
    // The gateway answers after the refusal is recorded, so nothing refused goes unrecorded.
    return { kind: 'denied', code, message };
  }

  /** Ends the recording (after every append settled). */
  end(reason: string): Promise<void> {
    this.stopIdentityWatch();
    return this.rec?.end(reason) ?? Promise.resolve();
  }
}

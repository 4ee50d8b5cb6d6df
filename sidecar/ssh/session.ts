// One agent SSH connection: the identity token as the password (or the keyboard-interactive answer)
// goes through the session core's login; the sidecar then logs in upstream with credentials the
// agent never sees, against a host key the policy pins. Session channels (shell, exec, sftp) are
// relayed by channel.ts; everything else the agent asks for (port forwarding, agent forwarding,
// X11, other subsystems) is refused and recorded.
import type { AuthContext, Client, Connection, Session } from 'ssh2';
import { CommandDecider, SessionCore } from '../session/index.ts';
import { type ChannelHost, SshChannel } from './channel.ts';
import type { SshRuntime, SshServices } from './context.ts';
import { SSH_RULES } from './rules.ts';
import { connectSshUpstream, fingerprint, readSshCredentials, SshUpstreamError } from './upstream.ts';

type Phase = 'auth' | 'login' | 'ready' | 'closed';

export class SshSession implements ChannelHost {
  readonly core: SessionCore;
  readonly decider: CommandDecider;
  readonly rt: () => SshRuntime;
  private phase: Phase = 'auth';
  upstream: Client | undefined;
  private readonly conn: Connection;
  private readonly channels = new Set<SshChannel>();
  private channelCount = 0;
  private readonly loginTimer: NodeJS.Timeout;
  private closeReason = 'client disconnected';
  private ending: Promise<void> | undefined;
  readonly done: Promise<void>;
  private resolveDone!: () => void;

  constructor(conn: Connection, source: string, runtime: () => SshRuntime, services: SshServices) {
    this.conn = conn;
    this.rt = runtime;
    this.core = new SessionCore('ssh', source, runtime, services);
    this.decider = new CommandDecider(this.core);
    this.done = new Promise((resolve) => {
      this.resolveDone = resolve;
    });
    this.core.metrics.sessionStarted();
    // Keystrokes and their echo must not wait for Nagle's algorithm.
    (conn as unknown as { setNoDelay(on: boolean): void }).setNoDelay(true);
    conn.on('authentication', (ctx) => this.onAuth(ctx));
    conn.on('ready', () => this.onReady());
    conn.on('error', (err) => {
      this.core.logger.debug({ err: err.message }, 'agent connection error');
      this.close('client connection error');
    });
    conn.on('end', () => this.close('client disconnected'));
    conn.on('close', () => this.close('client disconnected'));
    this.loginTimer = setTimeout(() => {
      if (this.phase === 'auth' || this.phase === 'login') this.close('agent did not log in in time');
    }, runtime().limits.loginTimeoutMs);
  }

  get logger() {
    return this.core.logger;
  }

  get isReady(): boolean {
    return this.phase === 'ready';
  }

  // ---------------------------------------------------------------- login

  private onAuth(ctx: AuthContext): void {
    if (this.phase !== 'auth') {
      ctx.reject([]);
      return;
    }
    if (ctx.method === 'password') {
      this.login(ctx, ctx.password);
      return;
    }
    if (ctx.method === 'keyboard-interactive') {
      ctx.prompt([{ prompt: 'Chaperone identity token: ', echo: false }], 'chaperone', (answers) => {
        if (this.phase !== 'auth') return ctx.reject([]);
        this.login(ctx, answers[0] ?? '');
      });
      return;
    }
    ctx.reject(['password', 'keyboard-interactive']);
  }

  private login(ctx: AuthContext, token: string): void {
    this.phase = 'login';
    this.doLogin(ctx.username, token === '' ? undefined : token).then(
      (ok) => {
        if (ok && this.phase === 'login') {
          ctx.accept();
          return;
        }
        ctx.reject([]);
        // No second try: every refusal is recorded as a session, an agent must not loop on them.
        setImmediate(() => this.close(this.closeReason));
      },
      (err: Error) => {
        this.logger.error({ err }, 'session login failed');
        ctx.reject([]);
        setImmediate(() => this.close(`login failed: ${err.message}`));
      },
    );
  }

  private async doLogin(user: string, token: string | undefined): Promise<boolean> {
    const rt = this.rt();
    const result = await this.core.login({
      token,
      readCredentials: () => readSshCredentials(rt.target.credentialsDir),
      labels: (c) => ({ 'ssh.user': user, 'ssh.upstreamUser': c.username }),
      refusedLabels: { 'ssh.user': user },
      maxPendingAppends: rt.limits.maxPendingAppends,
      onRecordingFailure: () => this.close('recording failed; the session cannot continue unrecorded'),
      live: () => this.phase === 'login',
    });
    if (result.kind !== 'ok') {
      this.closeReason = result.kind === 'denied' ? 'identity denied' : result.kind;
      return false;
    }
    const { identity, credentials, rec } = result;
    let up: Awaited<ReturnType<typeof connectSshUpstream>>;
    try {
      up = await this.core.connectUpstream(() =>
        connectSshUpstream({
          host: rt.target.upstream.host,
          port: rt.target.upstream.port,
          credentials,
          hostKeys: rt.upstreamHostKeys,
          timeoutMs: rt.limits.upstreamLoginTimeoutMs,
        }),
      );
    } catch (err) {
      const e = err as Error;
      const mismatch = e instanceof SshUpstreamError && e.hostKeyMismatch;
      this.logger.warn({ err: e.message, hostKeyMismatch: mismatch }, 'upstream login failed');
      rec.add('ssh.error', 'server', { phase: 'login', message: e.message, hostKeyMismatch: mismatch });
      if (mismatch) {
        this.decider.refuse(SSH_RULES.hostKey, `chaperone: ${e.message}`, {
          text: '',
          noun: 'session',
          named: {},
          detail: {},
        });
        rt.alerts.send({
          kind: 'blocked',
          sessionId: rec.sessionId,
          subject: identity.subject,
          target: rt.target.name,
          rule: SSH_RULES.hostKey,
          message: `ssh session refused: ${e.message}`,
        });
      }
      this.closeReason = mismatch ? 'upstream host key mismatch' : 'upstream login failed';
      return false;
    }
    if (this.phase !== 'login') {
      up.client.end();
      return false;
    }
    this.upstream = up.client;
    up.client.setNoDelay(true);
    rec.add('ssh.login', 'client', {
      user,
      upstreamUser: credentials.username,
      upstreamAuth: credentials.privateKey ? 'publickey' : 'password',
      upstreamHostKey: fingerprint(up.hostKey),
    });
    up.client.on('error', (err) => {
      this.logger.warn({ err: err.message, stack: err.stack }, 'upstream connection error');
      this.close('upstream connection error');
    });
    up.client.on('close', () => this.close('upstream closed the connection'));
    this.core.watchIdentity(identity, (message) => {
      this.closeReason = 'identity revoked';
      for (const c of this.channels) c.notify(message);
      this.close('identity revoked');
    });
    return true;
  }

  private onReady(): void {
    if (this.phase !== 'login' || !this.upstream) return;
    this.phase = 'ready';
    clearTimeout(this.loginTimer);
    this.logger.info('session started');
    this.conn.on('session', (accept) => {
      if (this.phase !== 'ready') return;
      const session: Session = accept();
      const channel = new SshChannel(this, String(++this.channelCount), session);
      this.channels.add(channel);
      channel.closed.then(() => this.channels.delete(channel));
    });
    this.conn.on('tcpip', (accept, reject, info) => {
      const destination = `${info.destIP}:${info.destPort}`;
      if (!this.rt().allowDirectTcpip.has(destination)) {
        this.refuseForwarding('direct-tcpip', { destination });
        reject();
        return;
      }
      this.forward(destination, info, accept, reject);
    });
    this.conn.on('request', (accept, reject, name, info) => {
      this.refuseForwarding(name, { ...(info as unknown as Record<string, unknown>) });
      reject?.();
      void accept;
    });
    this.conn.on('openssh.streamlocal', (_accept, reject, info) => {
      this.refuseForwarding('direct-streamlocal', { socketPath: info.socketPath });
      reject();
    });
  }

  /** An allowed direct-tcpip: opened by the upstream host, piped, recorded with its byte counts. */
  private forward(
    destination: string,
    info: { destIP: string; destPort: number; srcIP: string; srcPort: number },
    accept: () => import('ssh2').ServerChannel,
    reject: () => void,
  ): void {
    const upstream = this.upstream;
    const id = `forward-${++this.channelCount}`;
    if (!upstream) {
      reject();
      return;
    }
    upstream.forwardOut(info.srcIP, info.srcPort, info.destIP, info.destPort, (err, up) => {
      if (err || this.phase !== 'ready') {
        this.core.rec?.add('ssh.forward', 'server', {
          channel: id,
          destination,
          error: err?.message ?? 'closed',
        });
        return reject();
      }
      const agent = accept();
      const bytes = { client: 0, server: 0 };
      this.core.rec?.add('ssh.forward', 'client', { channel: id, destination, state: 'open' });
      agent.on('data', (d: Buffer) => {
        bytes.client += d.length;
        if (!up.write(d)) agent.pause();
      });
      up.on('drain', () => agent.resume());
      up.on('data', (d: Buffer) => {
        bytes.server += d.length;
        if (!agent.write(d)) up.pause();
      });
      agent.on('drain', () => up.resume());
      agent.on('end', () => up.end());
      up.on('end', () => agent.end());
      let done = false;
      const close = () => {
        if (done) return;
        done = true;
        this.core.rec?.add('ssh.forward', 'internal', {
          channel: id,
          destination,
          state: 'closed',
          ...bytes,
        });
        up.close();
        agent.close();
      };
      agent.on('close', close);
      up.on('close', close);
    });
  }

  refuseForwarding(kind: string, detail: Record<string, unknown>): void {
    this.decider.refuse(SSH_RULES.forwarding, `chaperone: ${kind} is not allowed through the sidecar`, {
      text: kind,
      noun: 'request',
      named: {},
      detail,
    });
  }

  private homeDir: Promise<string> | undefined;

  /** The upstream account's starting directory (for relative sftp and scp paths), asked once. */
  home(): Promise<string> {
    this.homeDir ??= new Promise((resolve) => {
      const upstream = this.upstream;
      if (!upstream) return resolve('/');
      upstream.sftp((err, sftp) => {
        if (err) return resolve('/');
        sftp.realpath('.', (e, p) => {
          sftp.end();
          resolve(e ? '/' : p);
        });
      });
    });
    return this.homeDir;
  }

  /** Whether a path on the host is a directory; undefined when the host has no sftp to ask. */
  isDirectory(path: string): Promise<boolean | undefined> {
    return new Promise((resolve) => {
      const upstream = this.upstream;
      if (!upstream) return resolve(undefined);
      upstream.sftp((err, sftp) => {
        if (err) return resolve(undefined);
        sftp.stat(path, (e, st) => {
          sftp.end();
          resolve(!e && st.isDirectory());
        });
      });
    });
  }

  // ---------------------------------------------------------------- shutdown

  /** Shutdown: tell the channels, close both sides, end the recording. */
  terminate(reason: string): Promise<void> {
    for (const c of this.channels) c.notify(`chaperone: terminating connection: ${reason}`);
    this.close(reason);
    return this.done;
  }

  close(reason: string): void {
    if (this.phase === 'closed') return;
    this.phase = 'closed';
    if (this.closeReason === 'client disconnected') this.closeReason = reason;
    clearTimeout(this.loginTimer);
    this.core.stopIdentityWatch();
    this.decider.cancelApproval();
    const channels = [...this.channels];
    for (const c of channels) c.close();
    this.upstream?.end();
    this.conn.end();
    const finish = () => {
      if (this.ending) return;
      this.core.metrics.sessionEnded();
      this.logger.info({ reason: this.closeReason, counts: this.core.rec?.counts }, 'session ended');
      this.ending = this.core.end(this.closeReason).finally(() => this.resolveDone());
    };
    // Let the channels record what their last replies completed before the recording ends.
    Promise.all(channels.map((c) => c.closed)).then(finish, finish);
  }
}

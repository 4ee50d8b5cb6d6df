// Opens the sidecar's own connection to the real database: TCP, optional TLS, startup and login
// with credentials read from files only the sidecar can see.
import { readFile } from 'node:fs/promises';
import { isIP, connect as netConnect, type Socket } from 'node:net';
import { join } from 'node:path';
import { TLSSocket, connect as tlsConnect } from 'node:tls';
import { serialize } from 'pg-protocol/dist/serializer.js';
import { type BackendFrame, BackendFramer } from './backend.ts';
import { connectWithDirectReads, type DirectReads, directReadsOf } from './direct-reads.ts';
import { B, errorFields, startupMessage } from './protocol.ts';
import { md5Password, ScramClient, tlsServerEndPoint } from './scram.ts';

export interface UpstreamTarget {
  name: string;
  host: string;
  port: number;
  tls: {
    mode: 'disable' | 'require' | 'verify-full';
    caFile?: string;
    serverName?: string;
    allowUnverifiedPassword?: boolean;
  };
}

/** The rule named when the sidecar refuses to hand credentials to an upstream it has not verified. */
export const UPSTREAM_IDENTITY_RULE = 'upstream-identity';

export interface Credentials {
  username: string;
  password: string;
}

export class UpstreamError extends Error {
  /** The upstream's own ErrorResponse, forwarded to the agent as is (it never holds the password). */
  readonly errorResponse: Buffer | undefined;
  readonly sqlstate: string | undefined;
  constructor(message: string, errorResponse?: Buffer) {
    super(message);
    this.errorResponse = errorResponse;
    this.sqlstate = errorResponse ? errorFields(errorResponse).C : undefined;
  }
}

/** Reads username and password files; read per connection so a rotated Secret applies at once. */
export async function readCredentials(dir: string | undefined): Promise<Credentials> {
  if (!dir) throw new UpstreamError('target has no credentialsDir: the sidecar has no upstream credentials');
  const read = async (name: string) => {
    try {
      return (await readFile(join(dir, name), 'utf8')).replace(/\r?\n$/, '');
    } catch (err) {
      throw new UpstreamError(
        `cannot read upstream credential file ${join(dir, name)}: ${(err as Error).message}`,
      );
    }
  };
  const [username, password] = await Promise.all([read('username'), read('password')]);
  return { username, password };
}

export interface UpstreamSession {
  socket: Socket;
  /** Raw ParameterStatus and NoticeResponse messages of the login, to replay to the agent. */
  startupMessages: Buffer[];
  backendKey: { pid: number; secret: number } | undefined;
  txStatus: 'I' | 'T' | 'E';
  /** Bytes that arrived after ReadyForQuery. */
  rest: Buffer;
  /** Zero-copy reads, for plain TCP (undefined with TLS: read the socket's 'data' events). */
  reads: DirectReads | undefined;
  /** How the sidecar logged in: trust, cleartext, md5, SCRAM-SHA-256 or SCRAM-SHA-256-PLUS. */
  auth: string;
}

/** Reads framed messages from a socket during the login, with one deadline for the whole login. */
class LoginReader {
  private readonly framer = new BackendFramer();
  private waiter: (() => void) | undefined;
  private failure: Error | undefined;
  private readonly socket: Socket;
  private readonly onData = (chunk: Buffer) => {
    this.framer.push(chunk);
    this.wake();
  };
  private readonly onEnd = () => this.fail(new UpstreamError('upstream closed the connection during login'));
  private readonly onError = (err: Error) =>
    this.fail(new UpstreamError(`upstream connection failed: ${err.message}`));

  constructor(socket: Socket) {
    this.socket = socket;
    socket.on('data', this.onData);
    socket.on('end', this.onEnd);
    socket.on('close', this.onEnd);
    socket.on('error', this.onError);
  }

  fail(err: Error): void {
    this.failure ??= err;
    this.wake();
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  }

  async next(): Promise<BackendFrame> {
    for (;;) {
      const frame = this.framer.next();
      if (frame) return frame;
      if (this.framer.error) throw new UpstreamError(this.framer.error);
      if (this.failure) throw this.failure;
      await new Promise<void>((resolve) => {
        this.waiter = resolve;
      });
    }
  }

  detach(): Buffer {
    this.socket.off('data', this.onData);
    this.socket.off('end', this.onEnd);
    this.socket.off('close', this.onEnd);
    this.socket.off('error', this.onError);
    return this.framer.takeRest();
  }
}

/**
 * The pod's /etc/hosts is written by the kubelet from the pod spec (hostAliases): whoever may create
 * pods may point an upstream name at an impostor there. The webhook refuses such pods; as defence in
 * depth the sidecar refuses to connect to a name the hosts file overrides (localhost aside), so the
 * name is resolved by DNS. CHAPERONE_HOSTS_FILE: another file (tests).
 */
export async function hostsFileOverride(host: string): Promise<string | undefined> {
  if (isIP(host) !== 0 || host.toLowerCase() === 'localhost') return undefined;
  const file = process.env.CHAPERONE_HOSTS_FILE ?? '/etc/hosts';
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return undefined;
  }
  const wanted = host.toLowerCase().replace(/\.$/, '');
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*/, '').trim();
    if (line === '') continue;
    const [address, ...names] = line.split(/\s+/);
    if (names.some((n) => n.toLowerCase().replace(/\.$/, '') === wanted)) {
      return `rule ${UPSTREAM_IDENTITY_RULE}: upstream host ${host} is overridden in ${file} (${address}), as a pod's hostAliases would; the sidecar connects only to names resolved by DNS`;
    }
  }
  return undefined;
}

async function tcpConnect(host: string, port: number, directReads: boolean): Promise<Socket> {
  const overridden = await hostsFileOverride(host);
  if (overridden) throw new UpstreamError(overridden);
  return tcpOpen(host, port, directReads);
}

function tcpOpen(host: string, port: number, directReads: boolean): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = directReads ? connectWithDirectReads(host, port) : netConnect({ host, port });
    socket.setNoDelay(true);
    const onError = (err: Error) =>
      reject(new UpstreamError(`cannot connect to upstream ${host}:${port}: ${err.message}`));
    socket.once('error', onError);
    socket.once('connect', () => {
      socket.off('error', onError);
      resolve(socket);
    });
  });
}

/** TCP, then SSLRequest and TLS when the target asks for it. */
export async function openTransport(target: UpstreamTarget, directReads = false): Promise<Socket> {
  const plain = target.tls.mode === 'disable';
  const socket = await tcpConnect(target.host, target.port, directReads && plain);
  if (plain) return socket;
  socket.write(serialize.requestSsl());
  const answer = await new Promise<number>((resolve, reject) => {
    socket.once('data', (b: Buffer) => resolve(b[0]!));
    socket.once('error', (err) =>
      reject(new UpstreamError(`upstream TLS negotiation failed: ${err.message}`)),
    );
    socket.once('close', () =>
      reject(new UpstreamError('upstream closed the connection during TLS negotiation')),
    );
  });
  if (answer !== 0x53) {
    socket.destroy();
    throw new UpstreamError(`upstream refused TLS (tls.mode ${target.tls.mode})`);
  }
  const ca = target.tls.caFile ? await readFile(target.tls.caFile, 'utf8') : undefined;
  // Both modes verify the chain (libpq's require skips it unless a root certificate is given; here it
  // never does); verify-full also checks the host name.
  const verifyName = target.tls.mode === 'verify-full';
  return new Promise((resolve, reject) => {
    const tlsSocket = tlsConnect({
      socket,
      ca,
      servername: target.tls.serverName ?? target.host,
      rejectUnauthorized: true,
      ...(verifyName ? {} : { checkServerIdentity: () => undefined }),
    });
    tlsSocket.once('secureConnect', () => {
      tlsSocket.setNoDelay(true);
      resolve(tlsSocket);
    });
    tlsSocket.once('error', (err) => {
      socket.destroy();
      reject(new UpstreamError(`upstream TLS handshake failed: ${err.message}`));
    });
  });
}

/** Connects and logs in; resolves at the upstream's first ReadyForQuery. */
export async function connectUpstream(
  target: UpstreamTarget,
  credentials: Credentials,
  params: Record<string, string>,
  timeoutMs: number,
): Promise<UpstreamSession> {
  const socket = await openTransport(target, true);
  const verified = target.tls.mode === 'verify-full';
  const passwordAllowed = verified || target.tls.allowUnverifiedPassword === true;
  const refusePassword = (method: string) =>
    new UpstreamError(
      `rule ${UPSTREAM_IDENTITY_RULE}: the upstream asked for a ${method} password but its identity is not verified (tls.mode ${target.tls.mode}); the password was not sent (use SCRAM, tls.mode verify-full, or tls.allowUnverifiedPassword)`,
    );
  const reader = new LoginReader(socket);
  const timer = setTimeout(
    () => reader.fail(new UpstreamError(`upstream login timed out after ${timeoutMs} ms`)),
    timeoutMs,
  );
  try {
    socket.write(startupMessage({ ...params, user: credentials.username }));
    const startupMessages: Buffer[] = [];
    let backendKey: UpstreamSession['backendKey'];
    let scram: ScramClient | undefined;
    let auth = 'trust';
    for (;;) {
      const { type, raw } = await reader.next();
      if (type === B.auth) {
        const code = raw.readInt32BE(5);
        if (code === 0) continue;
        if ((code === 3 || code === 5) && !passwordAllowed)
          throw refusePassword(code === 3 ? 'cleartext' : 'md5');
        if (code === 3) {
          auth = 'cleartext';
          socket.write(serialize.password(credentials.password));
        } else if (code === 5) {
          auth = 'md5';
          socket.write(
            serialize.password(md5Password(credentials.username, credentials.password, raw.subarray(9, 13))),
          );
        } else if (code === 10) {
          const mechanisms = raw.toString('utf8', 9).split('\0').filter(Boolean);
          if (!mechanisms.includes('SCRAM-SHA-256')) {
            throw new UpstreamError(`upstream offers no supported SASL mechanism (${mechanisms.join(', ')})`);
          }
          // Over TLS, bind the proof to the server's certificate when the server offers it.
          const cert = socket instanceof TLSSocket ? socket.getPeerX509Certificate() : undefined;
          const plus = cert !== undefined && mechanisms.includes('SCRAM-SHA-256-PLUS');
          auth = plus ? 'SCRAM-SHA-256-PLUS' : 'SCRAM-SHA-256';
          scram = new ScramClient(
            credentials.password,
            undefined,
            undefined,
            plus ? tlsServerEndPoint(cert.raw) : undefined,
          );
          socket.write(serialize.sendSASLInitialResponseMessage(auth, scram.clientFirst()));
        } else if (code === 11) {
          if (!scram) throw new UpstreamError('upstream sent SASLContinue before SASL');
          socket.write(serialize.sendSCRAMClientFinalMessage(scram.clientFinal(raw.toString('utf8', 9))));
        } else if (code === 12) {
          if (!scram) throw new UpstreamError('upstream sent SASLFinal before SASL');
          scram.verifyServerFinal(raw.toString('utf8', 9));
        } else {
          throw new UpstreamError(`upstream asks for unsupported authentication method ${code}`);
        }
      } else if (type === B.error) {
        const f = errorFields(raw);
        throw new UpstreamError(
          `upstream refused the login: ${f.M ?? 'unknown error'} (SQLSTATE ${f.C})`,
          raw,
        );
      } else if (type === B.parameterStatus || type === B.notice) {
        startupMessages.push(raw);
      } else if (type === B.keyData) {
        backendKey = { pid: raw.readInt32BE(5), secret: raw.readInt32BE(9) };
      } else if (type === B.readyForQuery) {
        const status = String.fromCharCode(raw[5]!) as 'I' | 'T' | 'E';
        return {
          socket,
          startupMessages,
          backendKey,
          txStatus: status,
          rest: reader.detach(),
          reads: directReadsOf(socket),
          auth,
        };
      } else if (type === B.negotiateVersion) {
        // We always ask for 3.0 with no options; nothing to negotiate.
      } else {
        throw new UpstreamError(
          `unexpected message '${String.fromCharCode(type)}' from upstream during login`,
        );
      }
    }
  } catch (err) {
    reader.detach();
    socket.destroy();
    if (err instanceof UpstreamError) throw err;
    throw new UpstreamError((err as Error).message);
  } finally {
    clearTimeout(timer);
  }
}

/** Sends a CancelRequest for the given upstream backend on a connection of its own. */
export async function sendUpstreamCancel(
  target: UpstreamTarget,
  key: { pid: number; secret: number },
): Promise<void> {
  const socket = await openTransport(target);
  await new Promise<void>((resolve) => {
    socket.once('close', () => resolve());
    socket.once('error', () => resolve());
    socket.end(serialize.cancel(key.pid, key.secret));
    setTimeout(() => {
      socket.destroy();
      resolve();
    }, 5000).unref();
  });
}

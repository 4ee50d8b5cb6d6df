// The sidecar's own SSH connection to the real host: credentials read from files only the sidecar
// can see, and the host key checked against the policy's pinned keys before any credential is sent
// (ssh2 verifies the key exchange signature, then asks hostVerifier; authentication comes after).
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Client, type ConnectConfig } from 'ssh2';

export interface SshCredentials {
  username: string;
  password?: string;
  privateKey?: Buffer;
}

export class SshUpstreamError extends Error {
  /** The upstream presented a host key the policy does not pin. */
  readonly hostKeyMismatch: boolean;
  constructor(message: string, hostKeyMismatch = false) {
    super(message);
    this.hostKeyMismatch = hostKeyMismatch;
  }
}

/** Reads username and privateKey or password (per connection, so a rotated Secret applies at once). */
export async function readSshCredentials(dir: string | undefined): Promise<SshCredentials> {
  if (!dir)
    throw new SshUpstreamError('target has no credentialsDir: the sidecar has no upstream credentials');
  const read = (name: string) => readFile(join(dir, name)).catch(() => undefined);
  const [username, password, privateKey] = await Promise.all([
    read('username'),
    read('password'),
    read('privateKey'),
  ]);
  if (!username) throw new SshUpstreamError(`cannot read upstream credential file ${join(dir, 'username')}`);
  if (!password && !privateKey)
    throw new SshUpstreamError(`neither privateKey nor password in ${dir}: no upstream credentials`);
  return {
    username: username.toString('utf8').replace(/\r?\n$/, ''),
    ...(privateKey ? { privateKey } : {}),
    ...(password ? { password: password.toString('utf8').replace(/\r?\n$/, '') } : {}),
  };
}

/** "<type> <base64> [comment]" lines (known_hosts without the host name) as wire-format blobs. */
export function parseHostKeys(lines: readonly string[]): Buffer[] {
  return lines.map((line) => {
    const [, blob] = line.trim().split(/\s+/);
    if (!blob) throw new Error(`invalid host key line: ${line}`);
    return Buffer.from(blob, 'base64');
  });
}

export interface UpstreamOptions {
  host: string;
  port: number;
  credentials: SshCredentials;
  hostKeys: readonly Buffer[];
  timeoutMs: number;
}

/** A logged-in client, or SshUpstreamError (hostKeyMismatch when the key was not pinned). */
export function connectSshUpstream(o: UpstreamOptions): Promise<{ client: Client; hostKey: Buffer }> {
  return new Promise((resolve, reject) => {
    const client = new Client();
    let presented: Buffer | undefined;
    let mismatch = false;
    const config: ConnectConfig = {
      host: o.host,
      port: o.port,
      username: o.credentials.username,
      readyTimeout: o.timeoutMs,
      keepaliveInterval: 15_000,
      // Never fall back to an agent or keyboard prompts of the sidecar's environment.
      agent: undefined,
      tryKeyboard: false,
      hostVerifier: (key: Buffer) => {
        presented = key;
        mismatch = !o.hostKeys.some((k) => k.equals(key));
        return !mismatch;
      },
      ...(o.credentials.privateKey ? { privateKey: o.credentials.privateKey } : {}),
      ...(o.credentials.password !== undefined ? { password: o.credentials.password } : {}),
    };
    const fail = (err: Error) => {
      client.removeAllListeners('ready');
      client.on('error', () => undefined);
      client.end();
      reject(
        mismatch
          ? new SshUpstreamError(
              `upstream host key ${presented ? fingerprint(presented) : '?'} is not one the policy pins`,
              true,
            )
          : new SshUpstreamError(err.message),
      );
    };
    client.once('error', fail);
    client.once('ready', () => {
      client.off('error', fail);
      resolve({ client, hostKey: presented! });
    });
    client.connect(config);
  });
}

/** OpenSSH-style SHA256 fingerprint of a wire-format key. */
export function fingerprint(key: Buffer): string {
  return `SHA256:${createHash('sha256').update(key).digest('base64').replace(/=+$/, '')}`;
}

// The upstream side of an HTTP or Kubernetes target: one undici Pool per target (keep-alive,
// pipelining off, streaming bodies both ways), TLS verified against the policy's CA (or the system
// roots), and the credential the agent never sees, read from the mounted Secret files per request
// so a rotated Secret applies without a restart.
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { type ConnectionOptions, checkServerIdentity } from 'node:tls';
import { Pool } from 'undici';
import type { SidecarTarget } from '../config/index.ts';

export class UpstreamConfigError extends Error {}

const CREDENTIAL_TTL_MS = 5_000;

export interface HttpUpstream {
  /** Requests: HTTP/2 when the upstream offers it (ALPN), else HTTP/1.1 keep-alive. */
  pool: Pool;
  /**
   * Upgrades (WebSocket; kubectl exec, attach, port-forward): HTTP/1.1 only, since over HTTP/2
   * undici would need RFC 8441 extended CONNECT, which the apiserver (and most servers) lack.
   */
  upgradePool: Pool;
  origin: string;
  /** Headers that carry the sidecar's credential (added to every request, redacted in recordings). */
  credentialHeaders(): Promise<Record<string, string>>;
  /** The Host header sent upstream. */
  host: string;
  close(): Promise<void>;
}

async function file(dir: string | undefined, name: string): Promise<string> {
  if (!dir)
    throw new UpstreamConfigError('target has no credentialsDir: the sidecar has no upstream credentials');
  try {
    return (await readFile(join(dir, name), 'utf8')).replace(/\r?\n$/, '');
  } catch (err) {
    throw new UpstreamConfigError(
      `cannot read upstream credential ${join(dir, name)}: ${(err as Error).message}`,
    );
  }
}

export type CredentialKind = 'none' | 'bearer' | 'basic' | 'header' | 'mtls';

export function credentialKind(target: SidecarTarget): CredentialKind {
  // The Kubernetes target acts with a token unless the policy says otherwise.
  return target.http?.credential ?? (target.protocol === 'kubernetes' ? 'bearer' : 'none');
}

function bracketed(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

export async function createUpstream(target: SidecarTarget): Promise<HttpUpstream> {
  const scheme = target.http?.scheme ?? 'https';
  const origin = `${scheme}://${bracketed(target.upstream.host)}:${target.upstream.port}`;
  const kind = credentialKind(target);
  const connect: ConnectionOptions = {};
  if (scheme === 'https') {
    if (target.tls.caFile) connect.ca = await readFile(target.tls.caFile, 'utf8');
    const name = target.tls.serverName ?? target.upstream.host;
    // SNI carries names only; an IP upstream is still verified against the IP in its certificate.
    if (!isIP(name)) connect.servername = name;
    else if (target.tls.serverName)
      connect.checkServerIdentity = (_h, cert) => checkServerIdentity(name, cert);
    connect.rejectUnauthorized = true;
    // require: the chain is checked, the name is not (verify-full and disable both check it: an
    // https upstream is never unverified).
    if (target.tls.mode === 'require') connect.checkServerIdentity = () => undefined;
    if (kind === 'mtls') {
      connect.cert = await file(target.credentialsDir, 'tls.crt');
      connect.key = await file(target.credentialsDir, 'tls.key');
    }
  } else if (kind !== 'none' && !['127.0.0.1', '::1', 'localhost'].includes(target.upstream.host)) {
    throw new UpstreamConfigError(
      `target ${target.name}: credentials are sent only over https (http only to a loopback upstream)`,
    );
  }
  const pool = new Pool(origin, {
    connect,
    connections: 64,
    pipelining: 1,
    // Watches and streamed downloads can be idle for long: no body timeout (the agent's own
    // timeouts apply); headers must come within five minutes (an approval is held before this).
    bodyTimeout: 0,
    headersTimeout: 300_000,
  });
  const upgradePool = new Pool(origin, { connect, connections: 64, allowH2: false, headersTimeout: 300_000 });
  const dir = target.credentialsDir;
  let cached: { at: number; headers: Record<string, string> } | undefined;
  const defaultPort = scheme === 'https' ? 443 : 80;
  return {
    pool,
    upgradePool,
    origin,
    host:
      target.upstream.port === defaultPort
        ? bracketed(target.upstream.host)
        : `${bracketed(target.upstream.host)}:${target.upstream.port}`,
    async credentialHeaders() {
      // Read from the mounted Secret at most every few seconds: a rotation applies within that,
      // and a busy target does not read files on every request.
      const now = Date.now();
      if (cached && now - cached.at < CREDENTIAL_TTL_MS) return cached.headers;
      const headers = await read();
      cached = { at: now, headers };
      return headers;
    },
    close: async () => {
      await Promise.all([pool.close(), upgradePool.close()]);
    },
  };

  async function read(): Promise<Record<string, string>> {
    switch (kind) {
      case 'bearer':
        return { authorization: `Bearer ${await file(dir, 'token')}` };
      case 'basic': {
        const [u, p] = await Promise.all([file(dir, 'username'), file(dir, 'password')]);
        return { authorization: `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}` };
      }
      case 'header': {
        const [name, value] = await Promise.all([file(dir, 'headerName'), file(dir, 'headerValue')]);
        return { [name.toLowerCase()]: value };
      }
      default:
        return {};
    }
  }
}

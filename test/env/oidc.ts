// A real OpenID provider (oidc-provider) in a child process on 127.0.0.1, issuing JWT access tokens
// through the client_credentials grant.
import { randomBytes } from 'node:crypto';
import { access, mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { httpOk, spawnOwned, waitUntil } from './net.ts';
import { clientSecretFor, OIDC_TTL_HEADER, type OidcServerConfig } from './oidc-clients.ts';
import type { RunningPart } from './part.ts';
import type { OidcInfo } from './types.ts';

export { clientSecretFor } from './oidc-clients.ts';

const serverScript = new URL('./oidc-server.ts', import.meta.url).pathname;

/** Starts the OIDC provider with its log and ready file under `dir`. */
export async function startOidc(dir: string): Promise<RunningPart<OidcInfo>> {
  await mkdir(dir, { recursive: true });
  const readyFile = join(dir, 'ready.json');
  const config: OidcServerConfig = {
    clientId: 'chaperone-test-agent',
    clientSecret: randomBytes(24).toString('base64url'),
    audience: 'urn:chaperone:test',
    readyFile,
  };
  const proc = spawnOwned(process.execPath, [serverScript], {
    name: 'oidc-provider',
    logFile: join(dir, 'oidc.log'),
    env: { PATH: process.env.PATH, NODE_ENV: 'test', CHAPERONE_OIDC_CONFIG: JSON.stringify(config) },
  });
  try {
    const exists = () =>
      access(readyFile).then(
        () => true,
        () => false,
      );
    await waitUntil('oidc-provider', exists, { process: proc });
    const { issuer } = JSON.parse(await readFile(readyFile, 'utf8')) as { issuer: string };
    const discoveryUrl = `${issuer}/.well-known/openid-configuration`;
    await waitUntil('oidc-provider discovery', () => httpOk(discoveryUrl), { process: proc });
    const discovery = (await (await fetch(discoveryUrl)).json()) as { token_endpoint: string };
    return {
      info: {
        issuer,
        clientId: config.clientId,
        clientSecret: config.clientSecret,
        audience: config.audience,
        tokenEndpoint: discovery.token_endpoint,
      },
      stop: () => proc.stop(),
    };
  } catch (err) {
    await proc.stop();
    throw err;
  }
}

export interface OidcTokenOptions {
  /** The token's subject: any id of [A-Za-z0-9._-]{1,64}; default the main client. */
  clientId?: string;
  /** The token's audience (an absolute URI); default info.audience. */
  audience?: string;
  /** Lifetime in seconds; default one hour. */
  ttlSeconds?: number;
}

/** A JWT access token from the client_credentials grant. */
export async function oidcToken(info: OidcInfo, options: OidcTokenOptions = {}): Promise<string> {
  const clientId = options.clientId ?? info.clientId;
  const secret = clientSecretFor(info, clientId);
  const headers: Record<string, string> = {
    authorization: `Basic ${Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(secret)}`).toString('base64')}`,
    'content-type': 'application/x-www-form-urlencoded',
  };
  if (options.ttlSeconds !== undefined) headers[OIDC_TTL_HEADER] = String(options.ttlSeconds);
  const body = new URLSearchParams({
    grant_type: 'client_credentials',
    resource: options.audience ?? info.audience,
  });
  const res = await fetch(info.tokenEndpoint, { method: 'POST', headers, body });
  const json = (await res.json()) as { access_token?: string; error?: string; error_description?: string };
  if (!res.ok || !json.access_token) {
    throw new Error(
      `token request for ${clientId} failed: ${res.status} ${json.error}: ${json.error_description}`,
    );
  }
  return json.access_token;
}

/** Revokes a token at the provider (RFC 7009), as the client it was issued to. */
export async function oidcRevoke(info: OidcInfo, token: string, clientId = info.clientId): Promise<void> {
  const secret = clientSecretFor(info, clientId);
  const discovery = (await (await fetch(`${info.issuer}/.well-known/openid-configuration`)).json()) as {
    revocation_endpoint: string;
  };
  const res = await fetch(discovery.revocation_endpoint, {
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(secret)}`).toString('base64')}`,
      'content-type': 'application/x-www-form-urlencoded',
    },
    body: new URLSearchParams({ token }),
  });
  if (!res.ok) throw new Error(`revocation failed: HTTP ${res.status} ${await res.text()}`);
}

// A token issuer under the test's control: OIDC discovery and a JWKS served by node:http (or
// node:https with a given certificate), keys it can rotate, and a count of the requests it served.
import { once } from 'node:events';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { after } from 'node:test';
import { type CryptoKey, exportJWK, generateKeyPair, type JWK, type JWTPayload, SignJWT } from 'jose';

export interface IssuerKey {
  kid: string;
  alg: string;
  privateKey: CryptoKey;
  publicJwk: JWK;
}

export async function newKey(kid: string, alg = 'RS256'): Promise<IssuerKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  return { kid, alg, privateKey, publicJwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' } };
}

export interface LocalIssuer {
  issuer: string;
  /** Keys published in the JWKS (replace to rotate). */
  published: IssuerKey[];
  requests: { discovery: number; jwks: number };
  /** HTTP status to answer the JWKS with (200 normally). */
  jwksStatus: number;
  sign(
    claims: JWTPayload,
    options?: { key?: IssuerKey; kid?: string; expiresIn?: string | number },
  ): Promise<string>;
  close(): Promise<void>;
}

/**
 * `closeWithTest` (default true) closes the issuer when the current test or suite ends. Pass false
 * when starting it inside a hook (node:test would close it right after the hook) and close it
 * yourself.
 */
export async function startLocalIssuer(
  tls?: { certPem: string; keyPem: string },
  options: { closeWithTest?: boolean } = {},
): Promise<LocalIssuer> {
  const key = await newKey('key-1');
  const state: LocalIssuer = {
    issuer: '',
    published: [key],
    requests: { discovery: 0, jwks: 0 },
    jwksStatus: 200,
    async sign(claims, options = {}) {
      const k = options.key ?? state.published[0]!;
      return new SignJWT({ iss: state.issuer, ...claims })
        .setProtectedHeader({ alg: k.alg, kid: options.kid ?? k.kid, typ: 'JWT' })
        .setIssuedAt()
        .setExpirationTime(options.expiresIn ?? '10m')
        .sign(k.privateKey);
    },
    close: async () => {
      if (!server.listening) return;
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    },
  };
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    const json = (status: number, body: unknown) =>
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    if (req.url === '/.well-known/openid-configuration') {
      state.requests.discovery++;
      json(200, { issuer: state.issuer, jwks_uri: `${state.issuer}/keys` });
    } else if (req.url === '/keys') {
      state.requests.jwks++;
      if (state.jwksStatus !== 200) json(state.jwksStatus, { error: 'unavailable' });
      else json(200, { keys: state.published.map((k) => k.publicJwk) });
    } else {
      json(404, { error: 'not found' });
    }
  };
  const server = tls
    ? createHttpsServer({ cert: tls.certPem, key: tls.keyPem }, handler)
    : createHttpServer(handler);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  state.issuer = `${tls ? 'https' : 'http'}://127.0.0.1:${(server.address() as AddressInfo).port}`;
  if (options.closeWithTest !== false) after(() => (server.listening ? state.close() : undefined));
  return state;
}

// The test OIDC provider as a process of its own (so a test blocked in a synchronous call never
// stalls token requests): oidc-provider on 127.0.0.1, client_credentials grants with JWT access
// tokens. Started by oidc.ts; it writes its facts to the ready file once it listens.

import { rename, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { exportJWK, generateKeyPair } from 'jose';
import Provider, { type Adapter, type AdapterPayload, type KoaContextLike } from 'oidc-provider';
import { clientSecretFor, isValidClientId, OIDC_TTL_HEADER, type OidcServerConfig } from './oidc-clients.ts';

const config = JSON.parse(process.env.CHAPERONE_OIDC_CONFIG ?? '') as OidcServerConfig;

/** Every client id of the allowed shape exists, with a secret derived from the main one. */
function clientMetadata(clientId: string): AdapterPayload {
  return {
    client_id: clientId,
    client_secret: clientSecretFor(config, clientId),
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: 'client_secret_basic',
  };
}

/** In-memory storage; clients resolved on demand so tests can pick any subject. */
class TestAdapter implements Adapter {
  static store = new Map<string, AdapterPayload>();
  readonly name: string;
  constructor(name: string) {
    this.name = name;
  }
  private key(id: string) {
    return `${this.name}:${id}`;
  }
  async upsert(id: string, payload: AdapterPayload) {
    TestAdapter.store.set(this.key(id), payload);
  }
  async find(id: string) {
    if (this.name === 'Client') return isValidClientId(id) ? clientMetadata(id) : undefined;
    return TestAdapter.store.get(this.key(id));
  }
  async findByUserCode() {
    return undefined;
  }
  async findByUid() {
    return undefined;
  }
  async consume(id: string) {
    const payload = TestAdapter.store.get(this.key(id));
    if (payload) payload.consumed = Math.floor(Date.now() / 1000);
  }
  async destroy(id: string) {
    TestAdapter.store.delete(this.key(id));
  }
  async revokeByGrantId() {}
}

const { privateKey } = await generateKeyPair('RS256', { extractable: true });
const signingKey = { ...(await exportJWK(privateKey)), alg: 'RS256', use: 'sig', kid: `test-${Date.now()}` };

const server = createServer();
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
const address = server.address();
if (!address || typeof address === 'string') throw new Error('no address');
const issuer = `http://127.0.0.1:${address.port}`;

const provider = new Provider(issuer, {
  adapter: TestAdapter,
  jwks: { keys: [signingKey] },
  // The lifetime the resource server asked for (getResourceServerInfo below).
  ttl: {
    ClientCredentials: (_ctx: unknown, token: { resourceServer?: { accessTokenTTL?: number } }) =>
      token.resourceServer?.accessTokenTTL ?? 3600,
  },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    // Tokens revoked here are reported inactive by introspection (identity liveness tests).
    revocation: { enabled: true },
    resourceIndicators: {
      enabled: true,
      // A token request without `resource` is for the default audience.
      defaultResource: async () => config.audience,
      useGrantedResource: async () => true,
      // Any absolute URI is a resource server; its access tokens are RS256 JWTs for it, except for
      // resources ending in ":opaque", whose tokens are opaque (oidc-provider introspects only those).
      getResourceServerInfo: async (ctx: KoaContextLike, resourceIndicator: string) => {
        const ttl = Number(ctx.get(OIDC_TTL_HEADER));
        return {
          scope: 'api',
          audience: resourceIndicator,
          accessTokenFormat: resourceIndicator.endsWith(':opaque') ? 'opaque' : 'jwt',
          accessTokenTTL: Number.isInteger(ttl) && ttl > 0 ? ttl : 3600,
          jwt: { sign: { alg: 'RS256' } },
        };
      },
    },
  },
});
server.on('request', provider.callback());

const facts = JSON.stringify({ issuer, port: address.port, pid: process.pid });
await writeFile(`${config.readyFile}.tmp`, facts);
await rename(`${config.readyFile}.tmp`, config.readyFile);

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    server.closeAllConnections();
    server.close(() => process.exit(0));
  });
}

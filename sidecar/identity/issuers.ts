// Where the keys of each trusted issuer come from: OIDC discovery (or a configured jwksUri), then
// jose's remote JWKS, which caches keys and refetches when a token names an unknown kid (key
// rotation), at most once per cooldown.
import { readFileSync } from 'node:fs';
import { createRemoteJWKSet, customFetch, type JWTVerifyGetKey } from 'jose';
import type { Logger } from 'pino';
import type { SidecarConfig } from '../config/index.ts';
import { IdentityError } from './errors.ts';
import { type CaFetch, createCaFetch, type JsonFetch } from './https-fetch.ts';

export type IssuerConfig = SidecarConfig['identity']['issuers'][number];

export interface IssuerKeysOptions {
  logger: Logger;
  fetch?: typeof fetch;
  /** Minimum time between JWKS refetches triggered by unknown kids. */
  jwksCooldownMs?: number;
  /** Time keys are used before the JWKS is fetched again. */
  jwksMaxAgeMs?: number;
  requestTimeoutMs?: number;
  /** After a failed discovery, how long to answer `unavailable` before trying again. */
  discoveryRetryMs?: number;
  /**
   * Bearer token file sent with discovery and JWKS requests of kubernetes issuers, for clusters
   * whose apiserver does not let anonymous users read them (the default RBAC grants
   * system:service-account-issuer-discovery to service accounts only).
   */
  kubernetesTokenFile?: string;
}

export interface IssuerKeys {
  readonly config: IssuerConfig;
  /** The key resolver for jwtVerify; throws IdentityError('unavailable') when keys cannot be fetched. */
  getKey: JWTVerifyGetKey;
  /** The introspection_endpoint of the issuer's discovery document (RFC 8414 / OIDC), if any. */
  discover(): Promise<string | undefined>;
  close(): void;
}

interface DiscoveryDocument {
  issuer?: unknown;
  jwks_uri?: unknown;
  introspection_endpoint?: unknown;
}

function describe(err: unknown): string {
  if (err instanceof Error) {
    const cause = (err as Error & { cause?: unknown }).cause;
    return cause instanceof Error ? `${err.message}: ${cause.message}` : err.message;
  }
  return String(err);
}

export function createIssuerKeys(config: IssuerConfig, options: IssuerKeysOptions): IssuerKeys {
  const timeout = options.requestTimeoutMs ?? 5000;
  const retryMs = options.discoveryRetryMs ?? 5000;
  const bearer = (): Record<string, string> => {
    if (!config.kubernetes || !options.kubernetesTokenFile) return {};
    try {
      return { authorization: `Bearer ${readFileSync(options.kubernetesTokenFile, 'utf8').trim()}` };
    } catch {
      return {};
    }
  };
  let caFetch: CaFetch | undefined;
  if (config.caFile) {
    let ca: Buffer;
    try {
      ca = readFileSync(config.caFile);
    } catch (err) {
      throw new Error(`CA file ${config.caFile} of issuer ${config.issuer} is unreadable: ${describe(err)}`);
    }
    caFetch = createCaFetch(ca, bearer);
  }
  const baseFetch: JsonFetch =
    caFetch?.fetch ?? (options.fetch as JsonFetch | undefined) ?? (fetch as JsonFetch);
  const doFetch: JsonFetch = caFetch
    ? baseFetch
    : (url, init = {}) => {
        const headers = new Headers(init.headers);
        for (const [k, v] of Object.entries(bearer())) headers.set(k, v);
        return baseFetch(url, { ...init, headers });
      };

  let jwks: Promise<ReturnType<typeof createRemoteJWKSet>> | undefined;
  let failedAt = 0;
  let lastFailure = '';

  async function discoverJwksUri(): Promise<string> {
    if (config.jwksUri) return config.jwksUri;
    const url = `${config.issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`;
    const res = await doFetch(url, { signal: AbortSignal.timeout(timeout) });
    if (!res.ok) throw new Error(`discovery ${url} answered HTTP ${res.status}`);
    const doc = (await res.json()) as DiscoveryDocument;
    if (doc.issuer !== config.issuer) {
      throw new Error(
        `discovery document names issuer ${JSON.stringify(doc.issuer)}, expected ${config.issuer}`,
      );
    }
    if (typeof doc.jwks_uri !== 'string') throw new Error(`discovery document ${url} has no jwks_uri`);
    return doc.jwks_uri;
  }

  function remoteSet(): Promise<ReturnType<typeof createRemoteJWKSet>> {
    if (jwks) return jwks;
    if (Date.now() - failedAt < retryMs) {
      return Promise.reject(new Error(`${lastFailure} (retrying in a few seconds)`));
    }
    jwks = discoverJwksUri().then(
      (uri) => {
        options.logger.info({ issuer: config.issuer, jwksUri: uri }, 'token issuer discovered');
        return createRemoteJWKSet(new URL(uri), {
          timeoutDuration: timeout,
          cooldownDuration: options.jwksCooldownMs ?? 30_000,
          cacheMaxAge: options.jwksMaxAgeMs ?? 600_000,
          [customFetch]: doFetch as never,
        });
      },
      (err: unknown) => {
        jwks = undefined;
        failedAt = Date.now();
        lastFailure = describe(err);
        throw err;
      },
    );
    return jwks;
  }

  const getKey: JWTVerifyGetKey = async (header, token) => {
    let set: Awaited<ReturnType<typeof remoteSet>>;
    try {
      set = await remoteSet();
    } catch (err) {
      throw new IdentityError('unavailable', `issuer ${config.issuer} discovery failed: ${describe(err)}`, {
        cause: err,
      });
    }
    try {
      return await set(header, token);
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === 'ERR_JWKS_NO_MATCHING_KEY') {
        throw new IdentityError(
          'signature',
          `no key${header.kid ? ` with kid ${JSON.stringify(header.kid)}` : ''} for ${header.alg} in the JWKS of issuer ${config.issuer}`,
          { cause: err },
        );
      }
      if (code === 'ERR_JWKS_MULTIPLE_MATCHING_KEYS') {
        throw new IdentityError(
          'signature',
          `the token names no kid and issuer ${config.issuer} has several keys`,
          {
            cause: err,
          },
        );
      }
      throw new IdentityError(
        'unavailable',
        `JWKS of issuer ${config.issuer} unavailable: ${describe(err)}`,
        {
          cause: err,
        },
      );
    }
  };

  async function introspectionEndpoint(): Promise<string | undefined> {
    const url = `${config.issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`;
    const res = await doFetch(url, { signal: AbortSignal.timeout(timeout) });
    if (!res.ok) throw new Error(`discovery ${url} answered HTTP ${res.status}`);
    const doc = (await res.json()) as DiscoveryDocument;
    if (doc.issuer !== config.issuer)
      throw new Error(`discovery document of ${config.issuer} names another issuer`);
    return typeof doc.introspection_endpoint === 'string' ? doc.introspection_endpoint : undefined;
  }

  return {
    config,
    getKey,
    discover: introspectionEndpoint,
    close: () => caFetch?.close(),
  };
}

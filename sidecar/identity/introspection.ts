// RFC 7662 token introspection: the issuer says whether a token is still active (a token revoked at
// the provider is refused even though its signature holds), and it is the only check possible for
// opaque (non-JWT) access tokens.
import { readFileSync } from 'node:fs';
import { secureUrl } from '../config/index.ts';
import { IdentityError } from './errors.ts';

export interface IntrospectionConfig {
  endpoint?: string;
  clientId: string;
  clientSecretFile: string;
}

export interface IntrospectionAnswer {
  active: boolean;
  sub?: string;
  client_id?: string;
  username?: string;
  iss?: string;
  aud?: string | string[];
  exp?: number;
  iat?: number;
  nbf?: number;
  [claim: string]: unknown;
}

export interface Introspector {
  /** The issuer's answer; throws IdentityError('unavailable') when it cannot be had. */
  introspect(token: string): Promise<IntrospectionAnswer>;
}

export function createIntrospector(
  issuer: string,
  config: IntrospectionConfig,
  options: { fetch?: typeof fetch; timeoutMs?: number; discover: () => Promise<string | undefined> },
): Introspector {
  const doFetch = options.fetch ?? fetch;
  const timeout = options.timeoutMs ?? 5000;
  let endpoint: Promise<string> | undefined;
  const resolve = (): Promise<string> => {
    if (config.endpoint) return Promise.resolve(config.endpoint);
    endpoint ??= options.discover().then((uri) => {
      if (!uri) throw new Error(`the discovery document of ${issuer} names no introspection_endpoint`);
      if (!secureUrl(uri)) throw new Error(`introspection_endpoint ${uri} is not https`);
      return uri;
    });
    endpoint.catch(() => {
      endpoint = undefined;
    });
    return endpoint;
  };
  return {
    async introspect(token) {
      try {
        const url = await resolve();
        const secret = readFileSync(config.clientSecretFile, 'utf8').trim();
        const basic = Buffer.from(
          `${encodeURIComponent(config.clientId)}:${encodeURIComponent(secret)}`,
        ).toString('base64');
        const res = await doFetch(url, {
          method: 'POST',
          headers: {
            authorization: `Basic ${basic}`,
            'content-type': 'application/x-www-form-urlencoded',
            accept: 'application/json',
          },
          body: new URLSearchParams({ token }),
          signal: AbortSignal.timeout(timeout),
        });
        const body = (await res.json().catch(() => ({}))) as IntrospectionAnswer & {
          error?: string;
          error_description?: string;
        };
        if (!res.ok) {
          throw new Error(
            `HTTP ${res.status}${body.error ? ` ${body.error}: ${body.error_description ?? ''}` : ''}`,
          );
        }
        if (typeof body.active !== 'boolean') throw new Error('answer has no boolean "active"');
        return body;
      } catch (err) {
        if (err instanceof IdentityError) throw err;
        throw new IdentityError(
          'unavailable',
          `introspection at issuer ${issuer} failed: ${(err as Error).message}`,
          { cause: err },
        );
      }
    },
  };
}

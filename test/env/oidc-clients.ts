// Clients of the test OIDC provider. Any client id of a simple shape is registered; its secret is
// derived from the main client's secret, so a test can get tokens for any subject from OidcInfo
// alone (a client_credentials token's `sub` is the client id).
import { createHmac } from 'node:crypto';

export interface OidcServerConfig {
  clientId: string;
  clientSecret: string;
  audience: string;
  readyFile: string;
}

/** Header a test sets on the token request to get a token living this many seconds. */
export const OIDC_TTL_HEADER = 'x-chaperone-test-token-ttl';

export function isValidClientId(id: string): boolean {
  return /^[A-Za-z0-9._-]{1,64}$/.test(id);
}

export function clientSecretFor(main: { clientId: string; clientSecret: string }, clientId: string): string {
  if (clientId === main.clientId) return main.clientSecret;
  return createHmac('sha256', main.clientSecret).update(clientId).digest('base64url');
}

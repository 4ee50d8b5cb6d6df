import type { AttributionChain } from './attribution.ts';

export type IdentityErrorCode =
  | 'missing'
  | 'malformed'
  | 'signature'
  | 'algorithm'
  | 'expired'
  | 'notYetValid'
  | 'issuer'
  | 'audience'
  | 'denied'
  | 'unavailable'
  /** A Kubernetes token bound to another pod or service account than the sidecar's own. */
  | 'binding'
  /** Valid signature, but the issuer no longer vouches for it (TokenReview, introspection). */
  | 'revoked'
  /** On the policy's offboarding list. */
  | 'offboarded';

/**
 * Why an agent was not let in. The message names what was wrong (issuer, audience, expiry, ...) and
 * never contains the token. `unavailable` means the token could not be checked (issuer discovery or
 * JWKS unreachable), not that it is invalid; `denied` means a valid identity the policy refuses.
 */
export class IdentityError extends Error {
  readonly code: IdentityErrorCode;
  /** The subject, when it is known (denied subjects; claims that failed after the signature held). */
  readonly subject?: string;
  /** Who launched the workload, and the rest of the chain, when known (alerts carry it). */
  attribution?: AttributionChain;

  constructor(code: IdentityErrorCode, message: string, options: { cause?: unknown; subject?: string } = {}) {
    super(message, options.cause !== undefined ? { cause: options.cause } : undefined);
    this.name = 'IdentityError';
    this.code = code;
    if (options.subject !== undefined) this.subject = options.subject;
  }
}

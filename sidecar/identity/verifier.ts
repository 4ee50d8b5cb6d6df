// Authenticates the agent from the token it presents (Postgres password, SSH password, HTTP bearer):
// a JWT from a trusted issuer (the cluster's service-account issuer or an external IdP), checked for
// signature, issuer, audience, expiry and not-before. Everything that can be decided from the token
// alone (format, algorithm, issuer, times, audience) is decided before any network call, so garbage
// and forged tokens cost nothing and cannot make the sidecar fetch anything.
import { decodeJwt, decodeProtectedHeader, errors, type JWTPayload, jwtVerify } from 'jose';
import type { Logger } from 'pino';
import type { SidecarConfig } from '../config/index.ts';
import { IdentityError } from './errors.ts';
import { createIssuerKeys, type IssuerKeys, type IssuerKeysOptions } from './issuers.ts';
import { type PodIdentity, serviceAccountSubject } from './pod.ts';

export interface AgentIdentity extends PodIdentity {
  /** The token's sub, or system:serviceaccount:<ns>:<sa> when no token was presented. */
  subject: string;
  issuer?: string;
  /** The verified claims of the token (the token itself is never kept). */
  claims?: Record<string, unknown>;
  viaToken: boolean;
  /** Where the agent connected from (peer address), for the session header. */
  source?: string;
}

export interface IdentityVerifier {
  /** Resolves the agent's identity or throws IdentityError. */
  authenticate(token: string | undefined, ctx: { source?: string }): Promise<AgentIdentity>;
  close(): void;
}

export interface IdentityVerifierOptions extends Omit<IssuerKeysOptions, 'logger'> {
  pod: PodIdentity;
  logger: Logger;
}

/** Asymmetric signatures only: an HMAC "signed" with the issuer's public key must never verify. */
export const ALLOWED_ALGORITHMS = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
  'Ed25519',
] as const;
const ALLOWED: ReadonlySet<string> = new Set(ALLOWED_ALGORITHMS);

const MAX_TOKEN_LENGTH = 16 * 1024;

function iso(seconds: number): string {
  const date = new Date(seconds * 1000);
  return Number.isNaN(date.getTime()) ? String(seconds) : date.toISOString();
}

function audiences(aud: unknown): string[] {
  if (typeof aud === 'string') return [aud];
  if (Array.isArray(aud)) return aud.filter((a): a is string => typeof a === 'string');
  return [];
}

function checkTimes(payload: JWTPayload, toleranceSec: number): void {
  const now = Math.floor(Date.now() / 1000);
  if (payload.exp === undefined)
    throw new IdentityError('malformed', 'token has no exp claim; tokens must expire');
  if (typeof payload.exp !== 'number')
    throw new IdentityError('malformed', 'token exp claim is not a number');
  if (payload.exp + toleranceSec <= now) {
    throw new IdentityError('expired', `token expired at ${iso(payload.exp)}`);
  }
  if (payload.nbf !== undefined) {
    if (typeof payload.nbf !== 'number')
      throw new IdentityError('malformed', 'token nbf claim is not a number');
    if (payload.nbf - toleranceSec > now) {
      throw new IdentityError('notYetValid', `token not valid before ${iso(payload.nbf)}`);
    }
  }
}

function checkAudience(payload: JWTPayload, accepted: readonly string[], issuer: string): void {
  const presented = audiences(payload.aud);
  if (!presented.some((a) => accepted.includes(a))) {
    const shown = presented.length > 0 ? presented.map((a) => JSON.stringify(a)).join(', ') : 'none';
    throw new IdentityError(
      'audience',
      `token audience ${shown} not accepted for issuer ${issuer} (expected one of ${accepted.map((a) => JSON.stringify(a)).join(', ')})`,
    );
  }
}

/** Maps what jwtVerify throws after our own checks passed (signature, or claims on the clock edge). */
function fromJose(err: unknown, issuer: string): IdentityError {
  if (err instanceof IdentityError) return err;
  if (err instanceof errors.JWSSignatureVerificationFailed) {
    return new IdentityError(
      'signature',
      `token signature does not verify with the keys of issuer ${issuer}`,
      {
        cause: err,
      },
    );
  }
  if (err instanceof errors.JOSEAlgNotAllowed) {
    return new IdentityError('algorithm', 'token algorithm not allowed', { cause: err });
  }
  if (err instanceof errors.JWTExpired) return new IdentityError('expired', 'token expired', { cause: err });
  if (err instanceof errors.JWTClaimValidationFailed) {
    const code =
      err.claim === 'aud'
        ? 'audience'
        : err.claim === 'iss'
          ? 'issuer'
          : err.claim === 'nbf'
            ? 'notYetValid'
            : 'malformed';
    return new IdentityError(code, `token claim ${err.claim} invalid: ${err.message}`, { cause: err });
  }
  if (err instanceof errors.JOSENotSupported || err instanceof errors.JWKInvalid) {
    return new IdentityError('signature', `token key unusable: ${(err as Error).message}`, { cause: err });
  }
  if (err instanceof errors.JOSEError) {
    return new IdentityError('malformed', `token invalid: ${err.message}`, { cause: err });
  }
  return new IdentityError(
    'unavailable',
    `token could not be verified: ${(err as Error)?.message ?? String(err)}`,
    {
      cause: err,
    },
  );
}

export function createIdentityVerifier(
  config: SidecarConfig['identity'],
  options: IdentityVerifierOptions,
): IdentityVerifier {
  // Allowed clock difference for exp and nbf: tokens are refused only once they are this far past
  // expiry (or this far before nbf), so issuer and sidecar clocks need not agree to the second.
  const tolerance = config.clockSkewSeconds;
  const issuers = new Map<string, IssuerKeys>();
  for (const issuer of config.issuers) {
    issuers.set(issuer.issuer, createIssuerKeys(issuer, { ...options, logger: options.logger }));
  }
  const denied = new Set(config.deniedSubjects);
  const podSubject = serviceAccountSubject(options.pod);

  function refuseDenied(subject: string): void {
    if (denied.has(subject))
      throw new IdentityError('denied', `subject ${subject} is denied by policy`, { subject });
    if (podSubject && denied.has(podSubject) && podSubject !== subject) {
      throw new IdentityError('denied', `pod service account ${podSubject} is denied by policy`, {
        subject: podSubject,
      });
    }
  }

  async function verifyToken(token: string): Promise<{ payload: JWTPayload; issuer: string }> {
    if (token.length > MAX_TOKEN_LENGTH) {
      throw new IdentityError('malformed', `token longer than ${MAX_TOKEN_LENGTH} characters`);
    }
    if (token.split('.').length !== 3) {
      throw new IdentityError('malformed', 'token is not a JWT (expected three dot-separated parts)');
    }
    let alg: unknown;
    let payload: JWTPayload;
    try {
      alg = decodeProtectedHeader(token).alg;
    } catch {
      throw new IdentityError('malformed', 'token header is not valid base64url JSON');
    }
    if (typeof alg !== 'string' || alg.toLowerCase() === 'none') {
      throw new IdentityError('algorithm', 'unsigned token (alg none) refused');
    }
    if (/^HS/i.test(alg)) {
      throw new IdentityError(
        'algorithm',
        `HMAC-signed token (${alg}) refused: only asymmetric signatures (${ALLOWED_ALGORITHMS.join(', ')}) are accepted`,
      );
    }
    if (!ALLOWED.has(alg)) {
      throw new IdentityError('algorithm', `token algorithm ${JSON.stringify(alg)} not accepted`);
    }
    try {
      payload = decodeJwt(token);
    } catch {
      throw new IdentityError('malformed', 'token payload is not valid base64url JSON');
    }
    const iss = payload.iss;
    if (typeof iss !== 'string' || iss === '') throw new IdentityError('issuer', 'token has no iss claim');
    const keys = issuers.get(iss);
    if (!keys) throw new IdentityError('issuer', `token issuer ${JSON.stringify(iss)} is not trusted`);
    checkTimes(payload, tolerance);
    checkAudience(payload, keys.config.audiences, iss);
    try {
      const verified = await jwtVerify(token, keys.getKey, {
        algorithms: [...ALLOWED_ALGORITHMS],
        issuer: iss,
        audience: keys.config.audiences,
        clockTolerance: tolerance,
        requiredClaims: ['exp'],
      });
      return { payload: verified.payload, issuer: iss };
    } catch (err) {
      throw fromJose(err, iss);
    }
  }

  return {
    async authenticate(token, ctx) {
      const source = ctx.source;
      if (token === undefined || token === '') {
        if (config.tokenRequired)
          throw new IdentityError('missing', 'a token is required and none was presented');
        if (!podSubject) {
          throw new IdentityError('missing', 'no token presented and the pod service account is unknown');
        }
        refuseDenied(podSubject);
        return { ...options.pod, subject: podSubject, viaToken: false, ...(source ? { source } : {}) };
      }
      const { payload, issuer } = await verifyToken(token);
      if (typeof payload.sub !== 'string' || payload.sub === '') {
        throw new IdentityError('malformed', `token of issuer ${issuer} has no sub claim`);
      }
      refuseDenied(payload.sub);
      return {
        ...options.pod,
        subject: payload.sub,
        issuer,
        claims: { ...payload },
        viaToken: true,
        ...(source ? { source } : {}),
      };
    },
    close() {
      for (const keys of issuers.values()) keys.close();
    },
  };
}

// Authenticates the agent from the token it presents (Postgres password, SSH password, HTTP bearer):
// a JWT from a trusted issuer (the cluster's service-account issuer or an external IdP), checked for
// signature, issuer, audience, expiry and not-before. Everything that can be decided from the token
// alone (format, algorithm, issuer, times, audience) is decided before any network call, so garbage
// and forged tokens cost nothing and cannot make the sidecar fetch anything.

import type { KubeConfig } from '@kubernetes/client-node';
import { decodeJwt, decodeProtectedHeader, errors, type JWTPayload, jwtVerify } from 'jose';
import type { Logger } from 'pino';
import type { SidecarConfig } from '../config/index.ts';
import { type AttributionChain, attributionChain } from './attribution.ts';
import { IdentityError } from './errors.ts';
import { createIntrospector, type Introspector } from './introspection.ts';
import { createIssuerKeys, type IssuerKeys, type IssuerKeysOptions } from './issuers.ts';
import { checkBinding, createTokenReviewer, kubernetesBinding, LEGACY_SA_ISSUER } from './kubernetes.ts';
import { createOffboardingList, daysSince, type OffboardingList } from './offboarding.ts';
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
  /** Human or CI identity -> workload -> pod -> service account -> token subject. */
  attribution?: AttributionChain;
  /** Allowed but worth a flag in the recording and an alert (offboarding action flag). */
  flags?: { kind: 'offboarded'; subject: string; date: string; days: number; message: string }[];
}

export interface IdentityVerifier {
  /** Resolves the agent's identity or throws IdentityError. */
  authenticate(token: string | undefined, ctx: { source?: string }): Promise<AgentIdentity>;
  /**
   * Re-checks the identity every identity.liveness.recheckSeconds (TokenReview, introspection,
   * expiry, denied and offboarded subjects); calls onRevoked once when it stops being valid.
   * Returns the function that stops watching.
   */
  watch(identity: AgentIdentity, onRevoked: (err: IdentityError) => void): () => void;
  close(): void;
}

export interface IdentityVerifierOptions extends Omit<IssuerKeysOptions, 'logger'> {
  pod: PodIdentity;
  logger: Logger;
  /** Credentials for TokenReview and the offboarding ConfigMap (the pod's service account). */
  kubeConfig?: () => KubeConfig;
}

type FullIdentityConfig = SidecarConfig['identity'];
type LivenessFields = 'kubernetesTokenBinding' | 'legacyServiceAccountTokens' | 'liveness';
/** The identity config; the liveness fields default as the schema does. */
export type IdentityConfig = Omit<FullIdentityConfig, LivenessFields> &
  Partial<Pick<FullIdentityConfig, LivenessFields>>;

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

interface Verified {
  payload: JWTPayload;
  issuer: string;
  /** The apiserver's TokenReview answer named this user. */
  reviewedAs?: string;
  /** The issuer's introspection endpoint already vouched for it. */
  introspected?: boolean;
}

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
  config: IdentityConfig,
  options: IdentityVerifierOptions,
): IdentityVerifier {
  const liveness = config.liveness ?? { tokenReview: false, recheckSeconds: 0 };
  const binding = config.kubernetesTokenBinding ?? 'serviceAccount';
  const noKube = (): KubeConfig => {
    throw new Error('no Kubernetes credentials (not in a cluster and KUBECONFIG unset)');
  };
  const reviewer = createTokenReviewer(options.kubeConfig ?? noKube);
  const offboarding: OffboardingList | undefined = config.offboarding
    ? createOffboardingList(
        {
          ...(config.offboarding.file ? { file: config.offboarding.file } : {}),
          ...(config.offboarding.url ? { url: config.offboarding.url } : {}),
          ...(config.offboarding.configMap && options.pod.namespace
            ? { configMap: { namespace: options.pod.namespace, ...config.offboarding.configMap } }
            : {}),
          refreshSeconds: config.offboarding.refreshSeconds,
        },
        { logger: options.logger, ...(options.kubeConfig ? { kubeConfig: options.kubeConfig } : {}) },
      )
    : undefined;
  if (config.offboarding?.configMap && !options.pod.namespace) {
    options.logger.error(
      'offboarding.configMap needs the pod namespace (CHAPERONE_POD_NAMESPACE); list not read',
    );
  }
  /** Tokens of authenticated identities, for re-checks; never part of the identity object. */
  const tokens = new WeakMap<AgentIdentity, string>();
  // Allowed clock difference for exp and nbf: tokens are refused only once they are this far past
  // expiry (or this far before nbf), so issuer and sidecar clocks need not agree to the second.
  const tolerance = config.clockSkewSeconds;
  const issuers = new Map<string, IssuerKeys>();
  const introspectors = new Map<string, Introspector>();
  for (const issuer of config.issuers) {
    const keys = createIssuerKeys(issuer, { ...options, logger: options.logger });
    issuers.set(issuer.issuer, keys);
    if (issuer.introspection) {
      introspectors.set(
        issuer.issuer,
        createIntrospector(issuer.issuer, issuer.introspection, {
          ...(options.fetch ? { fetch: options.fetch } : {}),
          discover: keys.discover,
        }),
      );
    }
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

  /** An opaque token: the issuers with introspection are asked in order; the first active answer wins. */
  async function introspectOpaque(token: string): Promise<Verified> {
    let lastError: IdentityError | undefined;
    for (const [issuer, introspector] of introspectors) {
      let answer: Awaited<ReturnType<Introspector['introspect']>>;
      try {
        answer = await introspector.introspect(token);
      } catch (err) {
        lastError = err as IdentityError;
        continue;
      }
      if (!answer.active) continue;
      if (answer.iss !== undefined && answer.iss !== issuer) continue;
      const { active: _active, ...claims } = answer;
      const payload: JWTPayload = {
        ...claims,
        iss: issuer,
        sub: answer.sub ?? answer.client_id ?? answer.username,
      };
      checkTimes(payload, tolerance);
      checkAudience(payload, issuers.get(issuer)!.config.audiences, issuer);
      return { payload, issuer, introspected: true };
    }
    if (lastError) throw lastError;
    throw new IdentityError(
      'revoked',
      'opaque token not active at any issuer with introspection (revoked, expired or unknown)',
    );
  }

  /** A Secret-based service-account token: only the apiserver can vouch for it (TokenReview). */
  async function verifyLegacy(token: string, payload: JWTPayload): Promise<Verified> {
    if (!config.legacyServiceAccountTokens) {
      throw new IdentityError(
        'issuer',
        'Secret-based service-account tokens (issuer kubernetes/serviceaccount) are not accepted; set identity.legacyServiceAccountTokens to accept them',
      );
    }
    const user = await reviewer.review(token, undefined);
    return {
      payload: { ...payload, sub: user.username },
      issuer: LEGACY_SA_ISSUER,
      reviewedAs: user.username,
    };
  }

  async function verifyToken(token: string): Promise<Verified> {
    if (token.length > MAX_TOKEN_LENGTH) {
      throw new IdentityError('malformed', `token longer than ${MAX_TOKEN_LENGTH} characters`);
    }
    if (token.split('.').length !== 3) {
      if (introspectors.size > 0) return introspectOpaque(token);
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
    if (iss === LEGACY_SA_ISSUER) return verifyLegacy(token, payload);
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

  /** Liveness beyond the signature: pod binding, TokenReview, introspection, maximum age. */
  async function checkLive(token: string, v: Verified): Promise<Verified> {
    const issuerConfig = issuers.get(v.issuer)?.config;
    const kube = v.issuer === LEGACY_SA_ISSUER || issuerConfig?.kubernetes === true;
    if (kube) {
      const b = kubernetesBinding(v.payload);
      if (!b && binding !== 'any') {
        throw new IdentityError('binding', 'Kubernetes token without service-account claims');
      }
      if (b) checkBinding(b, options.pod, binding);
      if (liveness.tokenReview && v.issuer !== LEGACY_SA_ISSUER) {
        const user = await reviewer.review(token, issuerConfig?.audiences);
        if (user.username !== v.payload.sub) {
          throw new IdentityError(
            'revoked',
            `TokenReview names ${user.username}, the token ${v.payload.sub}`,
          );
        }
        v = { ...v, reviewedAs: user.username };
      }
    }
    const introspector = introspectors.get(v.issuer);
    if (introspector && !v.introspected) {
      const answer = await introspector.introspect(token);
      if (!answer.active) {
        throw new IdentityError(
          'revoked',
          `issuer ${v.issuer} reports the token is no longer active (revoked)`,
          {
            ...(typeof v.payload.sub === 'string' ? { subject: v.payload.sub } : {}),
          },
        );
      }
    }
    if (liveness.maxTokenAgeSeconds !== undefined && !introspector && v.issuer !== LEGACY_SA_ISSUER) {
      const iat = v.payload.iat;
      if (typeof iat !== 'number') {
        throw new IdentityError(
          'malformed',
          'token has no iat claim; identity.liveness.maxTokenAgeSeconds needs it',
        );
      }
      const age = Math.floor(Date.now() / 1000) - iat;
      if (age > liveness.maxTokenAgeSeconds + tolerance) {
        throw new IdentityError(
          'expired',
          `token issued at ${iso(iat)} is ${age} s old; the policy accepts tokens up to ${liveness.maxTokenAgeSeconds} s old`,
        );
      }
    }
    return v;
  }

  /** The offboarding list against every identity in the chain (launcher, service account, token). */
  function checkOffboarding(identity: AgentIdentity): AgentIdentity {
    if (!offboarding || !config.offboarding) return identity;
    const chain = identity.attribution;
    const who: [string | undefined, string][] = [
      [identity.viaToken ? identity.subject : undefined, 'token of'],
      [chain?.serviceAccount, 'service account'],
      [chain?.launcher?.username, 'workload launched by'],
    ];
    const flags: NonNullable<AgentIdentity['flags']> = [];
    for (const [subject, what] of who) {
      const entry = subject ? offboarding.find(subject) : undefined;
      if (!entry || !subject) continue;
      const days = daysSince(entry);
      const message = `${what} ${subject} used ${days} day${days === 1 ? '' : 's'} after ${subject}'s offboarding on ${entry.date}`;
      if (config.offboarding.action === 'deny') {
        throw new IdentityError('offboarded', message, { subject });
      }
      flags.push({ kind: 'offboarded', subject, date: entry.date, days, message });
    }
    return flags.length > 0 ? { ...identity, flags } : identity;
  }

  const { launcher: _launcher, ...podFields } = options.pod;

  async function authenticate(token: string | undefined, source: string | undefined): Promise<AgentIdentity> {
    await offboarding?.ready;
    if (token === undefined || token === '') {
      if (config.tokenRequired)
        throw new IdentityError('missing', 'a token is required and none was presented');
      if (!podSubject) {
        throw new IdentityError('missing', 'no token presented and the pod service account is unknown');
      }
      refuseDenied(podSubject);
      return checkOffboarding({
        ...podFields,
        subject: podSubject,
        viaToken: false,
        ...(source ? { source } : {}),
        attribution: attributionChain(options.pod, undefined),
      });
    }
    const signed = await verifyToken(token);
    if (typeof signed.payload.sub !== 'string' || signed.payload.sub === '') {
      throw new IdentityError('malformed', `token of issuer ${signed.issuer} has no sub claim`);
    }
    // A denied subject is refused as such (its own alert) before binding and liveness checks.
    refuseDenied(signed.payload.sub);
    const verified = await checkLive(token, signed);
    const { payload, issuer } = verified;
    if (typeof payload.sub !== 'string' || payload.sub === '') {
      throw new IdentityError('malformed', `token of issuer ${issuer} has no sub claim`);
    }
    return checkOffboarding({
      ...podFields,
      subject: payload.sub,
      issuer,
      claims: { ...payload },
      viaToken: true,
      ...(source ? { source } : {}),
      attribution: attributionChain(options.pod, {
        subject: payload.sub,
        issuer,
        ...(verified.reviewedAs ? { reviewedAs: verified.reviewedAs } : {}),
      }),
    });
  }

  return {
    async authenticate(token, ctx) {
      try {
        const identity = await authenticate(token, ctx.source);
        if (token) tokens.set(identity, token);
        return identity;
      } catch (err) {
        // The chain travels with the refusal, for the alert and the recording.
        if (err instanceof IdentityError) err.attribution ??= attributionChain(options.pod, undefined);
        throw err;
      }
    },
    watch(identity, onRevoked) {
      const every = liveness.recheckSeconds;
      if (every <= 0) return () => {};
      const token = tokens.get(identity);
      let stopped = false;
      let checking = false;
      const timer = setInterval(async () => {
        if (checking) return; // a slow check is not stacked with the next one
        checking = true;
        try {
          await offboarding?.refresh();
          await authenticate(token, identity.source);
        } catch (err) {
          if (stopped) return;
          const e = err instanceof IdentityError ? err : new IdentityError('unavailable', String(err));
          if (e.code === 'unavailable') {
            // Cannot tell: keep the session, try again at the next interval (logged).
            options.logger.warn(
              { subject: identity.subject, err: e.message },
              'identity re-check unavailable',
            );
            return;
          }
          stopped = true;
          clearInterval(timer);
          e.attribution ??= identity.attribution;
          onRevoked(e);
        } finally {
          checking = false;
        }
      }, every * 1000);
      timer.unref();
      return () => {
        stopped = true;
        clearInterval(timer);
      };
    },
    close() {
      for (const keys of issuers.values()) keys.close();
      offboarding?.close();
    },
  };
}

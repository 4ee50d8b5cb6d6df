// Who may look: a shared bearer token (the default) or OIDC access tokens (JWTs of one issuer and
// audience, checked against its JWKS). Browsers present the token once on /login and then carry a
// short-lived session cookie signed with a key that lives only in this process.
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { createRemoteJWKSet, jwtVerify } from 'jose';

export type AuthConfig =
  | { mode: 'token'; token: string }
  | {
      mode: 'oidc';
      issuer: string;
      audience: string;
      /** Only these subjects (the token's `sub`) may look; all when absent. */
      subjects?: string[];
    };

export interface Viewer {
  subject: string;
  /** Epoch seconds after which the session ends. */
  exp: number;
}

export const MIN_TOKEN_LENGTH = 16;
const SESSION_SECONDS = 8 * 3600;

const digest = (s: string) => createHash('sha256').update(s).digest();

export class Gate {
  readonly config: AuthConfig;
  readonly #cookieKey = randomBytes(32);
  #jwks: ReturnType<typeof createRemoteJWKSet> | undefined;

  constructor(config: AuthConfig) {
    if (config.mode === 'token' && config.token.length < MIN_TOKEN_LENGTH) {
      throw new Error(`the viewer token must have at least ${MIN_TOKEN_LENGTH} characters`);
    }
    this.config = config;
  }

  /** The viewer a bearer token stands for, or undefined when it does not open the gate. */
  async check(token: string): Promise<Viewer | undefined> {
    const now = Math.floor(Date.now() / 1000);
    if (this.config.mode === 'token') {
      // Equal-length digests keep the comparison constant-time whatever the token's length.
      if (!timingSafeEqual(digest(token), digest(this.config.token))) return undefined;
      return { subject: 'token', exp: now + SESSION_SECONDS };
    }
    const { issuer, audience, subjects } = this.config;
    try {
      this.#jwks ??= createRemoteJWKSet(await jwksUri(issuer));
      const { payload } = await jwtVerify(token, this.#jwks, { issuer, audience });
      if (!payload.sub || (subjects && !subjects.includes(payload.sub))) return undefined;
      return { subject: payload.sub, exp: Math.min(payload.exp ?? now + 300, now + SESSION_SECONDS) };
    } catch {
      return undefined;
    }
  }

  /** The cookie value for a viewer: base64url(JSON).hmac. */
  sessionCookie(v: Viewer): string {
    const body = Buffer.from(JSON.stringify({ sub: v.subject, exp: v.exp })).toString('base64url');
    return `${body}.${this.#mac(body)}`;
  }

  fromCookie(value: string | undefined): Viewer | undefined {
    if (!value) return undefined;
    const [body, mac] = value.split('.');
    if (!body || !mac) return undefined;
    const want = Buffer.from(this.#mac(body));
    const got = Buffer.from(mac);
    if (want.length !== got.length || !timingSafeEqual(want, got)) return undefined;
    try {
      const { sub, exp } = JSON.parse(Buffer.from(body, 'base64url').toString('utf8')) as {
        sub: string;
        exp: number;
      };
      return exp > Date.now() / 1000 ? { subject: sub, exp } : undefined;
    } catch {
      return undefined;
    }
  }

  #mac(body: string): string {
    return createHmac('sha256', this.#cookieKey).update(body).digest('base64url');
  }
}

async function jwksUri(issuer: string): Promise<URL> {
  const res = await fetch(`${issuer.replace(/\/$/, '')}/.well-known/openid-configuration`);
  if (!res.ok) throw new Error(`OIDC discovery of ${issuer} failed: HTTP ${res.status}`);
  const meta = (await res.json()) as { issuer?: string; jwks_uri?: string };
  if (meta.issuer !== issuer || !meta.jwks_uri) throw new Error(`OIDC discovery of ${issuer}: bad metadata`);
  return new URL(meta.jwks_uri);
}

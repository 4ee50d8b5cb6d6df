// The agent's token as the Postgres password, through the gateway with real psql, verified against
// the real OpenID provider of the test environment: a valid token is let in and the recorded session
// carries the agent's identity; expired, wrong-audience, untrusted-issuer, unsigned (alg none),
// HS256-with-the-public-key, forged and denied-subject tokens are each refused with an error psql
// shows, and recorded as identity.denied.
import assert from 'node:assert/strict';
import { createPublicKey } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { decodeJwt, decodeProtectedHeader, type JWK, SignJWT } from 'jose';
import type { RecordedEvent } from '../../recording/index.ts';
import { testEnv } from '../../test/env/index.ts';
import { oidcToken } from '../../test/env/oidc.ts';
import { newKey } from '../identity/testing/local-issuer.ts';
import { type Harness, kinds, startHarness } from './testing/harness.ts';

const env = await testEnv(['postgres', 'oidc']);
const { oidc } = env;

/**
 * No clock tolerance in this sidecar (identity.clockSkewSeconds: 0), so a token with a short TTL is
 * expired for it a second after its exp: the provider cannot backdate tokens, so the expired-token
 * case waits for a real expiry, which must be short.
 */
const CLOCK_SKEW_SECONDS = 0;
const SHORT_TTL_SECONDS = 2;

const b64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

/** The JWKS of the OIDC provider, as its discovery document names it. */
async function providerKeys(): Promise<JWK[]> {
  const discovery = (await (await fetch(`${oidc.issuer}/.well-known/openid-configuration`)).json()) as {
    jwks_uri: string;
  };
  return ((await (await fetch(discovery.jwks_uri)).json()) as { keys: JWK[] }).keys;
}

describe('agent tokens through the postgres gateway (real OIDC provider, real psql)', () => {
  let h: Harness;
  /** Requested first, so its expiry passes while the other cases run. */
  let shortLived: string;

  before(async () => {
    shortLived = await oidcToken(oidc, { ttlSeconds: SHORT_TTL_SECONDS });
    h = await startHarness(env.postgres, {
      config: {
        identity: {
          tokenRequired: true,
          deniedSubjects: ['evil-bot'],
          clockSkewSeconds: CLOCK_SKEW_SECONDS,
          issuers: [{ issuer: oidc.issuer, audiences: [oidc.audience] }],
        },
      },
    });
  });
  after(() => h?.close());

  /** psql with `token` as its password; asserts it is refused with `message` and recorded with `code`. */
  async function refused(token: string, code: string, message: RegExp): Promise<RecordedEvent[]> {
    const r = await h.psql(['-c', 'SELECT 1'], { token });
    assert.notEqual(r.code, 0, 'psql fails');
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /FATAL: {2}chaperone: authentication failed: /);
    assert.match(r.stderr, message);
    // Several cases share a code (alg none, HS256): the message tells this refusal's session apart.
    const events = await h.waitForSession((evs) =>
      evs.some(
        (e) =>
          e.kind === 'identity.denied' && e.payload.code === code && message.test(String(e.payload.message)),
      ),
    );
    assert.equal(kinds(events, 'pg.startup').length, 0, 'a refused agent never reaches the database');
    assert.equal(kinds(events, 'pg.query').length, 0);
    assert.ok(!JSON.stringify(events).includes(token), 'the presented token is not recorded');
    return events;
  }

  test('a valid token is accepted and the session carries the agent identity', async () => {
    const token = await oidcToken(oidc, { clientId: 'agent-bob' });
    const r = await h.psql(['-A', '-t', '-c', "SELECT 'token-ok'"], { token });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'token-ok');
    const events = await h.waitForSession((evs) =>
      kinds(evs, 'pg.query').some((e) => e.payload.sql === "SELECT 'token-ok'"),
    );
    const start = events[0]!;
    assert.equal(start.kind, 'session.start');
    const identity = start.payload.identity as Record<string, unknown>;
    assert.equal(identity.subject, 'agent-bob');
    assert.equal(identity.issuer, oidc.issuer);
    assert.equal((identity.claims as Record<string, unknown>).aud, oidc.audience);
    // The pod's identity is recorded alongside the token's.
    assert.equal(identity.serviceAccount, 'agent');
    assert.equal(identity.namespace, 'agents');
    assert.ok(!JSON.stringify(events).includes(token), 'the token itself is not recorded');
  });

  test('a token for another audience is refused', async () => {
    const token = await oidcToken(oidc, { audience: 'urn:chaperone:other' });
    await refused(
      token,
      'audience',
      /token audience "urn:chaperone:other" not accepted for issuer http:\/\/127\.0\.0\.1:\d+/,
    );
  });

  test('a correctly signed token of an issuer the policy does not trust is refused', async () => {
    const token = await h.issuer.sign({ sub: 'agent-bob', aud: oidc.audience });
    await refused(token, 'issuer', /token issuer "http:\/\/127\.0\.0\.1:\d+" is not trusted/);
  });

  test('an unsigned token (alg none) is refused', async () => {
    const genuine = decodeJwt(await oidcToken(oidc));
    const token = `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url({ ...genuine, sub: 'admin' })}.`;
    await refused(token, 'algorithm', /unsigned token \(alg none\) refused/);
  });

  test('an HS256 token "signed" with the issuer’s public key is refused', async () => {
    const genuine = await oidcToken(oidc);
    const { kid } = decodeProtectedHeader(genuine);
    const jwk = (await providerKeys()).find((k) => k.kid === kid);
    assert.ok(jwk, 'the provider publishes the key of its tokens');
    const publicPem = createPublicKey({ key: jwk as never, format: 'jwk' }).export({
      type: 'spki',
      format: 'pem',
    });
    const token = await new SignJWT({ ...decodeJwt(genuine), sub: 'admin' })
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT', kid: String(kid) })
      .sign(Buffer.from(publicPem));
    await refused(token, 'algorithm', /HMAC-signed token \(HS256\) refused/);
  });

  test('a token signed with a foreign key under the issuer’s kid is refused', async () => {
    const genuine = await oidcToken(oidc);
    const { kid } = decodeProtectedHeader(genuine);
    const attacker = await newKey(String(kid), 'RS256');
    const token = await new SignJWT({ ...decodeJwt(genuine), sub: 'admin' })
      .setProtectedHeader({ alg: 'RS256', kid: String(kid) })
      .sign(attacker.privateKey);
    await refused(token, 'signature', /token signature does not verify with the keys of issuer/);
  });

  test('a valid token of a denied subject is refused', async () => {
    const token = await oidcToken(oidc, { clientId: 'evil-bot' });
    await refused(token, 'denied', /subject evil-bot is denied by policy/);
  });

  test('an expired token is refused', async () => {
    const { exp, iat } = decodeJwt(shortLived);
    assert.equal(exp! - iat!, SHORT_TTL_SECONDS, 'the provider issued the short TTL asked for');
    // Refused a second after exp; the message names this token's own exp.
    await sleep(Math.max(0, (exp! + CLOCK_SKEW_SECONDS + 1) * 1000 - Date.now()));
    await refused(
      shortLived,
      'expired',
      new RegExp(`token expired at ${new Date(exp! * 1000).toISOString().replace(/[.]/g, '\\.')}`),
    );
  });
});

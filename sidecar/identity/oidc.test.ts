// Against the real OpenID provider of the test environment (oidc-provider issuing JWT access tokens).
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { decodeJwt, decodeProtectedHeader, SignJWT } from 'jose';
import { pino } from 'pino';
import { testEnv } from '../../test/env/index.ts';
import { oidcToken } from '../../test/env/oidc.ts';
import { IdentityError, type IdentityErrorCode } from './errors.ts';
import { newKey } from './testing/local-issuer.ts';
import { createIdentityVerifier } from './verifier.ts';

const logger = pino({ level: 'silent' });

async function rejects(promise: Promise<unknown>, code: IdentityErrorCode, message: RegExp) {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof IdentityError, String(err));
    assert.equal(err.code, code, err.message);
    assert.match(err.message, message);
    return true;
  });
}

const { oidc: info } = await testEnv(['oidc']);

describe('identity verifier with the real OIDC provider', () => {
  const verifier = createIdentityVerifier(
    {
      issuers: [{ issuer: info.issuer, audiences: [info.audience], kubernetes: false }],
      tokenRequired: true,
      deniedSubjects: ['evil-bot'],
      clockSkewSeconds: 0,
    },
    { pod: { serviceAccount: 'bot', namespace: 'agents' }, logger },
  );
  after(() => verifier.close());

  it('accepts a client_credentials access token', async () => {
    const token = await oidcToken(info);
    const id = await verifier.authenticate(token, { source: '127.0.0.1:1' });
    assert.equal(id.subject, info.clientId);
    assert.equal(id.issuer, info.issuer);
    assert.equal(id.viaToken, true);
    assert.equal(id.claims?.aud, info.audience);
  });

  it('rejects a token for another audience', async () => {
    const token = await oidcToken(info, { audience: 'urn:chaperone:other' });
    await rejects(verifier.authenticate(token, {}), 'audience', /"urn:chaperone:other" not accepted/);
  });

  it('rejects an expired token', async () => {
    const token = await oidcToken(info, { ttlSeconds: 1 });
    const exp = decodeJwt(token).exp!;
    await new Promise((r) => setTimeout(r, Math.max(0, exp * 1000 - Date.now()) + 1100));
    await rejects(verifier.authenticate(token, {}), 'expired', /token expired at/);
  });

  it('refuses a denied subject', async () => {
    const token = await oidcToken(info, { clientId: 'evil-bot' });
    await rejects(verifier.authenticate(token, {}), 'denied', /subject evil-bot is denied/);
  });

  it('rejects a token of a trusted issuer claim but a foreign key, and one from an untrusted issuer', async () => {
    const genuine = await oidcToken(info);
    const { kid } = decodeProtectedHeader(genuine);
    const attacker = await newKey(String(kid), 'RS256');
    const forged = await new SignJWT({ ...decodeJwt(genuine), sub: 'admin' })
      .setProtectedHeader({ alg: 'RS256', kid: String(kid) })
      .sign(attacker.privateKey);
    await rejects(verifier.authenticate(forged, {}), 'signature', /does not verify/);
    const other = createIdentityVerifier(
      {
        issuers: [{ issuer: 'https://idp.example', audiences: [info.audience], kubernetes: false }],
        tokenRequired: true,
        deniedSubjects: [],
        clockSkewSeconds: 30,
      },
      { pod: {}, logger },
    );
    await rejects(other.authenticate(genuine, {}), 'issuer', /is not trusted/);
    other.close();
  });

  it('rejects the provider token re-signed with HS256 using its public JWK', async () => {
    const genuine = await oidcToken(info);
    const discovery = (await (await fetch(`${info.issuer}/.well-known/openid-configuration`)).json()) as {
      jwks_uri: string;
    };
    const jwks = (await (await fetch(discovery.jwks_uri)).json()) as { keys: { kid?: string }[] };
    const publicJwk = jwks.keys.find((k) => k.kid === decodeProtectedHeader(genuine).kid);
    assert.ok(publicJwk, 'the provider publishes the signing key');
    const secret = JSON.stringify(publicJwk);
    const forged = await new SignJWT(decodeJwt(genuine))
      .setProtectedHeader({ alg: 'HS256', kid: decodeProtectedHeader(genuine).kid })
      .sign(new TextEncoder().encode(secret));
    await rejects(verifier.authenticate(forged, {}), 'algorithm', /HS256/);
  });
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createRemoteJWKSet, decodeJwt, decodeProtectedHeader, errors, jwtVerify } from 'jose';
import { startEnv, testEnv } from './index.ts';
import { httpOk } from './net.ts';
import { oidcToken } from './oidc.ts';

const { oidc } = await testEnv(['oidc']);
const discovery = (await (await fetch(`${oidc.issuer}/.well-known/openid-configuration`)).json()) as {
  issuer: string;
  jwks_uri: string;
  token_endpoint: string;
  grant_types_supported: string[];
};
const jwks = createRemoteJWKSet(new URL(discovery.jwks_uri));
const verify = (token: string, audience = oidc.audience, currentDate?: Date) =>
  jwtVerify(token, jwks, {
    issuer: oidc.issuer,
    audience,
    algorithms: ['RS256'],
    typ: 'at+jwt',
    ...(currentDate ? { currentDate } : {}),
  });

test('discovery names the issuer, the token endpoint and the client_credentials grant', () => {
  assert.equal(discovery.issuer, oidc.issuer);
  assert.equal(discovery.token_endpoint, oidc.tokenEndpoint);
  assert.ok(discovery.grant_types_supported.includes('client_credentials'));
});

test('a client_credentials access token is an RS256 JWT with issuer, audience and expiry', async () => {
  const token = await oidcToken(oidc);
  assert.equal(decodeProtectedHeader(token).alg, 'RS256');
  const { payload } = await verify(token);
  assert.equal(payload.sub, oidc.clientId);
  assert.equal(payload.aud, oidc.audience);
  const now = Math.floor(Date.now() / 1000);
  assert.ok(payload.exp !== undefined && payload.exp > now && payload.exp <= now + 3600 + 5);
});

test('another client id gives another subject', async () => {
  const { payload } = await verify(await oidcToken(oidc, { clientId: 'agent-b' }));
  assert.equal(payload.sub, 'agent-b');
});

test('a token for another audience fails audience validation', async () => {
  const token = await oidcToken(oidc, { audience: 'https://elsewhere.test/' });
  await assert.rejects(verify(token), errors.JWTClaimValidationFailed);
  assert.equal((await verify(token, 'https://elsewhere.test/')).payload.aud, 'https://elsewhere.test/');
});

test('an expired token fails validation', async () => {
  const token = await oidcToken(oidc, { ttlSeconds: 1 });
  // The verifier's clock, not the wall clock: valid just before exp, expired just after.
  const exp = decodeJwt(token).exp! * 1000;
  await verify(token, oidc.audience, new Date(exp - 500));
  await assert.rejects(verify(token, oidc.audience, new Date(exp + 1000)), errors.JWTExpired);
});

test('a wrong client secret is refused', async () => {
  await assert.rejects(oidcToken({ ...oidc, clientSecret: 'not-the-secret' }), /invalid_client/);
});

test('a provider of its own starts, and stop() shuts it down', async (t) => {
  const started = Date.now();
  const own = await startEnv(['oidc']);
  t.after(() => own.stop());
  const info = own.info.oidc;
  assert.ok(info);
  t.diagnostic(`warm start of oidc: ${Date.now() - started} ms`);
  assert.notEqual(info.issuer, oidc.issuer);
  await own.stop();
  assert.equal(await httpOk(`${info.issuer}/.well-known/openid-configuration`), false);
});

import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { type CryptoKey, exportSPKI, importJWK, SignJWT } from 'jose';
import { pino } from 'pino';
import { generateControlPlanePki } from '../../test/env/kube-certs.ts';
import { sidecarConfigSchema } from '../config/index.ts';
import { IdentityError, type IdentityErrorCode } from './errors.ts';
import { podIdentityFromEnv } from './pod.ts';
import { newKey, startLocalIssuer } from './testing/local-issuer.ts';
import { createIdentityVerifier, type IdentityVerifierOptions } from './verifier.ts';

const logger = pino({ level: 'silent' });
const pod = { serviceAccount: 'bot', namespace: 'agents', pod: 'bot-0', node: 'n1', podUid: 'uid-1' };

type IdentityInput = Parameters<typeof createIdentityVerifier>[0];
function identityConfig(
  input: Partial<IdentityInput> & { issuers: IdentityInput['issuers'] },
): IdentityInput {
  return { tokenRequired: true, deniedSubjects: [], clockSkewSeconds: 30, ...input };
}

function verifierFor(
  issuer: string,
  extra: Partial<IdentityInput> = {},
  options: Partial<IdentityVerifierOptions> = {},
) {
  const v = createIdentityVerifier(
    identityConfig({ issuers: [{ issuer, audiences: ['chaperone'], kubernetes: false }], ...extra }),
    { pod, logger, jwksCooldownMs: 0, discoveryRetryMs: 0, ...options },
  );
  after(() => v.close());
  return v;
}

async function rejects(promise: Promise<unknown>, code: IdentityErrorCode, message: RegExp, token?: string) {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof IdentityError, `IdentityError expected, got ${String(err)}`);
    assert.equal(err.code, code, `code of: ${err.message}`);
    assert.match(err.message, message);
    if (token) assert.ok(!err.message.includes(token), 'the token is never part of the message');
    return true;
  });
}

const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
const now = () => Math.floor(Date.now() / 1000);

describe('identity verifier with a local issuer', () => {
  it('accepts a valid token and returns subject, claims and pod identity', async () => {
    const issuer = await startLocalIssuer();
    const v = verifierFor(issuer.issuer);
    const token = await issuer.sign({ sub: 'agent-7', aud: 'chaperone', team: 'data' });
    const id = await v.authenticate(token, { source: '127.0.0.1:5555' });
    assert.equal(id.subject, 'agent-7');
    assert.equal(id.issuer, issuer.issuer);
    assert.equal(id.viaToken, true);
    assert.equal(id.claims?.team, 'data');
    assert.equal(id.pod, 'bot-0');
    assert.equal(id.serviceAccount, 'bot');
    assert.equal(id.source, '127.0.0.1:5555');
    assert.equal(issuer.requests.discovery, 1);
    await v.authenticate(await issuer.sign({ sub: 'agent-8', aud: ['x', 'chaperone'] }), {});
    assert.equal(issuer.requests.jwks, 1, 'keys cached');
  });

  it('rejects expired, not-yet-valid, wrong-audience and foreign-issuer tokens before any network call', async () => {
    const issuer = await startLocalIssuer();
    const v = verifierFor(issuer.issuer);
    const expired = await issuer.sign({ sub: 'a', aud: 'chaperone' }, { expiresIn: now() - 120 });
    await rejects(v.authenticate(expired, {}), 'expired', /token expired at \d{4}-/, expired);
    const early = await issuer.sign({ sub: 'a', aud: 'chaperone', nbf: now() + 3600 });
    await rejects(v.authenticate(early, {}), 'notYetValid', /not valid before/, early);
    const wrongAud = await issuer.sign({ sub: 'a', aud: 'kubernetes' });
    await rejects(
      v.authenticate(wrongAud, {}),
      'audience',
      /audience "kubernetes" not accepted.*"chaperone"/,
      wrongAud,
    );
    const foreign = await issuer.sign({ sub: 'a', aud: 'chaperone', iss: 'https://evil.example' });
    await rejects(
      v.authenticate(foreign, {}),
      'issuer',
      /issuer "https:\/\/evil.example" is not trusted/,
      foreign,
    );
    const noIss = await new SignJWT({ sub: 'a', aud: 'chaperone' })
      .setProtectedHeader({ alg: 'RS256', kid: 'key-1' })
      .setExpirationTime('5m')
      .sign(issuer.published[0]!.privateKey);
    await rejects(v.authenticate(noIss, {}), 'issuer', /no iss claim/);
    assert.deepEqual(issuer.requests, { discovery: 0, jwks: 0 });
  });

  it('allows a small clock skew', async () => {
    const issuer = await startLocalIssuer();
    const v = verifierFor(issuer.issuer);
    const justExpired = await issuer.sign({ sub: 'a', aud: 'chaperone' }, { expiresIn: now() - 5 });
    assert.equal((await v.authenticate(justExpired, {})).subject, 'a');
  });

  it('honours identity.clockSkewSeconds for exp and nbf', async () => {
    const issuer = await startLocalIssuer();
    const lenient = verifierFor(issuer.issuer, { clockSkewSeconds: 30 });
    const strict = verifierFor(issuer.issuer, { clockSkewSeconds: 5 });
    const expiredTenSecondsAgo = await issuer.sign({ sub: 'a', aud: 'chaperone' }, { expiresIn: now() - 10 });
    assert.equal((await lenient.authenticate(expiredTenSecondsAgo, {})).subject, 'a');
    await rejects(
      strict.authenticate(expiredTenSecondsAgo, {}),
      'expired',
      /token expired at \d{4}-/,
      expiredTenSecondsAgo,
    );
    const validInTenSeconds = await issuer.sign({ sub: 'b', aud: 'chaperone', nbf: now() + 10 });
    assert.equal((await lenient.authenticate(validInTenSeconds, {})).subject, 'b');
    await rejects(strict.authenticate(validInTenSeconds, {}), 'notYetValid', /not valid before/);
    // No tolerance at all: a token is refused the second its exp passes.
    const none = verifierFor(issuer.issuer, { clockSkewSeconds: 0 });
    const expiredNow = await issuer.sign({ sub: 'c', aud: 'chaperone' }, { expiresIn: now() });
    await rejects(none.authenticate(expiredNow, {}), 'expired', /token expired at/);
    assert.equal((await lenient.authenticate(expiredNow, {})).subject, 'c');
  });

  it('refuses alg none', async () => {
    const issuer = await startLocalIssuer();
    const v = verifierFor(issuer.issuer);
    const unsigned = `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ iss: issuer.issuer, sub: 'root', aud: 'chaperone', exp: now() + 600 })}.`;
    await rejects(v.authenticate(unsigned, {}), 'algorithm', /alg none/, unsigned);
    const noneUpper = `${b64({ alg: 'NONE' })}.${b64({ iss: issuer.issuer, sub: 'root', aud: 'chaperone', exp: now() + 600 })}.`;
    await rejects(v.authenticate(noneUpper, {}), 'algorithm', /alg none/);
  });

  it('refuses a token HMAC-signed (HS256) with the issuer public key', async () => {
    const issuer = await startLocalIssuer();
    const v = verifierFor(issuer.issuer);
    const publicKey = await importJWK(issuer.published[0]!.publicJwk, 'RS256');
    const pem = await exportSPKI(publicKey as CryptoKey);
    const claims = { iss: issuer.issuer, sub: 'root', aud: 'chaperone' };
    for (const secret of [pem, JSON.stringify(issuer.published[0]!.publicJwk)]) {
      const forged = await new SignJWT(claims)
        .setProtectedHeader({ alg: 'HS256', kid: 'key-1' })
        .setExpirationTime('5m')
        .sign(new TextEncoder().encode(secret));
      await rejects(v.authenticate(forged, {}), 'algorithm', /HMAC-signed token \(HS256\) refused/, forged);
    }
    const weird = `${b64({ alg: 'RS1' })}.${b64(claims)}.c2ln`;
    await rejects(v.authenticate(weird, {}), 'algorithm', /"RS1" not accepted/);
  });

  it('refuses tokens signed by another key, tampered tokens and unknown kids', async () => {
    const issuer = await startLocalIssuer();
    const v = verifierFor(issuer.issuer);
    const attacker = await newKey('key-1');
    const sameKid = await issuer.sign({ sub: 'root', aud: 'chaperone' }, { key: attacker });
    await rejects(v.authenticate(sameKid, {}), 'signature', /signature does not verify/, sameKid);
    const otherKid = await issuer.sign({ sub: 'root', aud: 'chaperone' }, { key: await newKey('evil') });
    await rejects(v.authenticate(otherKid, {}), 'signature', /no key with kid "evil"/, otherKid);
    const good = await issuer.sign({ sub: 'agent', aud: 'chaperone' });
    const [h, , s] = good.split('.');
    const tampered = `${h}.${b64({ iss: issuer.issuer, sub: 'root', aud: 'chaperone', exp: now() + 600 })}.${s}`;
    await rejects(v.authenticate(tampered, {}), 'signature', /signature does not verify/, tampered);
  });

  it('rejects malformed tokens with a clear message', async () => {
    const issuer = await startLocalIssuer();
    const v = verifierFor(issuer.issuer);
    await rejects(v.authenticate('hunter2', {}), 'malformed', /not a JWT/);
    await rejects(v.authenticate('a.b.c', {}), 'malformed', /header is not valid/);
    await rejects(v.authenticate(`${b64({ alg: 'RS256' })}.!!!.c`, {}), 'malformed', /payload is not valid/);
    await rejects(v.authenticate('x'.repeat(20_000), {}), 'malformed', /longer than/);
    const noExp = await new SignJWT({ iss: issuer.issuer, sub: 'a', aud: 'chaperone' })
      .setProtectedHeader({ alg: 'RS256', kid: 'key-1' })
      .sign(issuer.published[0]!.privateKey);
    await rejects(v.authenticate(noExp, {}), 'malformed', /no exp claim/);
    const noSub = await issuer.sign({ aud: 'chaperone' });
    await rejects(v.authenticate(noSub, {}), 'malformed', /no sub claim/);
  });

  it('refuses denied subjects, from the token or the pod service account', async () => {
    const issuer = await startLocalIssuer();
    const v = verifierFor(issuer.issuer, { deniedSubjects: ['mallory'] });
    const token = await issuer.sign({ sub: 'mallory', aud: 'chaperone' });
    await rejects(v.authenticate(token, {}), 'denied', /subject mallory is denied/, token);
    const podDenied = verifierFor(issuer.issuer, { deniedSubjects: ['system:serviceaccount:agents:bot'] });
    const fine = await issuer.sign({ sub: 'alice', aud: 'chaperone' });
    await assert.rejects(podDenied.authenticate(fine, {}), (err: IdentityError) => {
      assert.equal(err.code, 'denied');
      assert.equal(err.subject, 'system:serviceaccount:agents:bot');
      return true;
    });
  });

  it('needs a token when tokenRequired, else uses the pod service account', async () => {
    const issuer = await startLocalIssuer();
    await rejects(verifierFor(issuer.issuer).authenticate(undefined, {}), 'missing', /token is required/);
    await rejects(verifierFor(issuer.issuer).authenticate('', {}), 'missing', /token is required/);
    const optional = verifierFor(issuer.issuer, { tokenRequired: false });
    const id = await optional.authenticate(undefined, { source: 'x' });
    const { attribution, ...rest } = id;
    assert.deepEqual(rest, {
      ...pod,
      subject: 'system:serviceaccount:agents:bot',
      viaToken: false,
      source: 'x',
    });
    assert.equal(attribution?.serviceAccount, 'system:serviceaccount:agents:bot');
    await rejects(optional.authenticate('not-a-jwt', {}), 'malformed', /not a JWT/);
    const denied = verifierFor(issuer.issuer, {
      tokenRequired: false,
      deniedSubjects: ['system:serviceaccount:agents:bot'],
    });
    await rejects(denied.authenticate(undefined, {}), 'denied', /denied by policy/);
    const unknownPod = createIdentityVerifier(identityConfig({ issuers: [], tokenRequired: false }), {
      pod: {},
      logger,
    });
    await rejects(unknownPod.authenticate(undefined, {}), 'missing', /service account is unknown/);
  });

  it('accepts a token of a new key after the issuer rotates its JWKS', async () => {
    const issuer = await startLocalIssuer();
    const v = verifierFor(issuer.issuer);
    assert.equal((await v.authenticate(await issuer.sign({ sub: 'a', aud: 'chaperone' }), {})).subject, 'a');
    const rotated = await newKey('key-2', 'ES256');
    const early = await issuer.sign({ sub: 'b', aud: 'chaperone' }, { key: rotated });
    await rejects(v.authenticate(early, {}), 'signature', /no key with kid "key-2"/);
    issuer.published = [rotated];
    const id = await v.authenticate(await issuer.sign({ sub: 'b', aud: 'chaperone' }), {});
    assert.equal(id.subject, 'b');
    assert.equal(issuer.requests.jwks, 3, 'refetched on the unknown kid');
  });

  it('does not refetch the JWKS for unknown kids within the cooldown', async () => {
    const issuer = await startLocalIssuer();
    const v = verifierFor(issuer.issuer, {}, { jwksCooldownMs: 60_000 });
    await v.authenticate(await issuer.sign({ sub: 'a', aud: 'chaperone' }), {});
    for (let i = 0; i < 5; i++) {
      const t = await issuer.sign({ sub: 'x', aud: 'chaperone' }, { key: await newKey(`rand-${i}`) });
      await rejects(v.authenticate(t, {}), 'signature', /no key/);
    }
    assert.equal(issuer.requests.jwks, 1);
  });

  it('reports unreachable discovery and JWKS as unavailable, not invalid', async () => {
    const issuer = await startLocalIssuer();
    const token = await issuer.sign({ sub: 'a', aud: 'chaperone' });
    issuer.jwksStatus = 503;
    await rejects(
      verifierFor(issuer.issuer).authenticate(token, {}),
      'unavailable',
      /JWKS of issuer .* unavailable/,
    );
    issuer.jwksStatus = 200;
    await issuer.close();
    await rejects(
      verifierFor(issuer.issuer).authenticate(token, {}),
      'unavailable',
      /discovery failed/,
      token,
    );
  });

  it('rejects a discovery document naming another issuer', async () => {
    const server = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ issuer: 'https://other.example', jwks_uri: 'http://127.0.0.1:1/keys' }));
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    after(() => server.close());
    const iss = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const key = await newKey('k');
    const token = await new SignJWT({ iss, sub: 'a', aud: 'chaperone' })
      .setProtectedHeader({ alg: 'RS256', kid: 'k' })
      .setExpirationTime('5m')
      .sign(key.privateKey);
    await rejects(
      verifierFor(iss).authenticate(token, {}),
      'unavailable',
      /names issuer "https:\/\/other.example"/,
    );
  });

  it('fetches discovery and JWKS over HTTPS with the issuer CA file', async () => {
    const pki = await generateControlPlanePki();
    const issuer = await startLocalIssuer(pki.apiserver);
    const dir = await mkdtemp(join(tmpdir(), 'chaperone-identity-'));
    after(() => rm(dir, { recursive: true, force: true }));
    await writeFile(join(dir, 'ca.crt'), pki.ca.certPem);
    const token = await issuer.sign({
      sub: 'system:serviceaccount:agents:bot',
      aud: 'chaperone',
      'kubernetes.io': { namespace: 'agents', serviceaccount: { name: 'bot' } },
    });
    const withCa = createIdentityVerifier(
      identityConfig({
        issuers: [
          { issuer: issuer.issuer, audiences: ['chaperone'], kubernetes: true, caFile: join(dir, 'ca.crt') },
        ],
      }),
      { pod, logger },
    );
    after(() => withCa.close());
    assert.equal((await withCa.authenticate(token, {})).subject, 'system:serviceaccount:agents:bot');
    // Without the CA the certificate is not trusted: unavailable, never accepted.
    await rejects(verifierFor(issuer.issuer).authenticate(token, {}), 'unavailable', /discovery failed/);
  });

  it('takes its configuration from the sidecar config schema', () => {
    const config = sidecarConfigSchema.shape.identity.parse({
      issuers: [{ issuer: 'https://kubernetes.default.svc', audiences: ['chaperone'], kubernetes: true }],
    });
    const v = createIdentityVerifier(config, { pod: podIdentityFromEnv({}), logger });
    v.close();
    assert.equal(config.tokenRequired, true);
    assert.equal(config.clockSkewSeconds, 30, 'default clock skew');
    assert.equal(sidecarConfigSchema.shape.identity.parse({ clockSkewSeconds: 0 }).clockSkewSeconds, 0);
    for (const bad of [-1, 301, 1.5, '30']) {
      const result = sidecarConfigSchema.shape.identity.safeParse({ clockSkewSeconds: bad });
      assert.equal(result.success, false, `clockSkewSeconds ${JSON.stringify(bad)} is refused`);
      assert.deepEqual(result.error?.issues[0]?.path, ['clockSkewSeconds']);
    }
  });
});

describe('podIdentityFromEnv', () => {
  it('reads the downward API variables', () => {
    assert.deepEqual(
      podIdentityFromEnv({
        CHAPERONE_POD_NAME: 'bot-0',
        CHAPERONE_POD_NAMESPACE: 'agents',
        CHAPERONE_POD_UID: 'uid-1',
        CHAPERONE_NODE_NAME: 'n1',
        CHAPERONE_SERVICE_ACCOUNT: 'bot',
        OTHER: 'x',
      }),
      pod,
    );
    assert.deepEqual(podIdentityFromEnv({ CHAPERONE_POD_NAME: '  ' }), {});
  });
});

// Identity liveness against the real OIDC provider (oidc-provider, introspection and revocation on)
// and real PostgreSQL through the sidecar: a token revoked at the provider is refused, a running
// session whose token is revoked is ended with identity.revoked recorded, and an offboarded
// identity is refused with the date in the message and in the alert, which carries the chain.
// The provider listens on http://127.0.0.1: the only http issuer the config accepts is loopback.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import pg from 'pg';
import { pino } from 'pino';
import { testEnv } from '../../test/env/index.ts';
import { clientSecretFor, oidcRevoke, oidcToken } from '../../test/env/oidc.ts';
import { sidecarConfigSchema } from '../config/index.ts';
import { kinds, startHarness } from '../postgres/testing/harness.ts';
import type { IdentityError } from './errors.ts';
import { createIdentityVerifier } from './verifier.ts';

const { oidc, postgres } = await testEnv(['oidc', 'postgres']);
const OPAQUE = 'urn:chaperone:opaque';
const RS_CLIENT = 'chaperone-sidecar';
const logger = pino({ level: 'silent' });
const dir = await mkdtemp(join(tmpdir(), 'chaperone-liveness-'));
after(() => rm(dir, { recursive: true, force: true }));

async function secretFile(dir: string): Promise<string> {
  const file = join(dir, 'introspection-secret');
  await writeFile(file, clientSecretFor(oidc, RS_CLIENT), { mode: 0o600 });
  return file;
}

function oidcIssuer(secret: string) {
  return {
    issuer: oidc.issuer,
    audiences: [OPAQUE, oidc.audience],
    kubernetes: false,
    introspection: { clientId: RS_CLIENT, clientSecretFile: secret },
  };
}

/** A local Slack-compatible webhook that keeps what it receives. */
async function alertReceiver(): Promise<{ url: string; texts: string[] }> {
  const texts: string[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => {
      body += c.toString();
    });
    req.on('end', () => {
      texts.push(body);
      res.end('ok');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  after(() => new Promise<void>((r) => server.close(() => r())));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, texts };
}

async function until<T>(what: string, probe: () => T | undefined | Promise<T | undefined>, ms = 20_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('identity liveness with the OIDC provider', () => {
  it('refuses an http issuer that is not loopback', () => {
    const parsed = sidecarConfigSchema.shape.identity.safeParse({
      issuers: [{ issuer: 'http://idp.example.com', audiences: ['x'] }],
    });
    assert.equal(parsed.success, false);
    assert.match(JSON.stringify(parsed.error?.issues), /must be https/);
  });

  it('accepts an active token through introspection and refuses it once revoked at the provider', async () => {
    const verifier = createIdentityVerifier(
      {
        issuers: [oidcIssuer(await secretFile(dir))],
        tokenRequired: true,
        deniedSubjects: [],
        clockSkewSeconds: 5,
      },
      { pod: { namespace: 'agents', serviceAccount: 'agent' }, logger },
    );
    after(() => verifier.close());
    const token = await oidcToken(oidc, { clientId: 'alice', audience: OPAQUE });
    const id = await verifier.authenticate(token, {});
    assert.equal(id.subject, 'alice');
    assert.equal(id.issuer, oidc.issuer);
    await oidcRevoke(oidc, token, 'alice');
    await assert.rejects(
      verifier.authenticate(token, {}),
      (err: IdentityError) => err.code === 'revoked' && /not active/.test(err.message),
    );
  });

  it('without introspection, refuses a JWT older than liveness.maxTokenAgeSeconds', async () => {
    const verifier = createIdentityVerifier(
      {
        issuers: [{ issuer: oidc.issuer, audiences: [oidc.audience], kubernetes: false }],
        tokenRequired: true,
        deniedSubjects: [],
        clockSkewSeconds: 0,
        liveness: { tokenReview: false, recheckSeconds: 0, maxTokenAgeSeconds: 1 },
      },
      { pod: { namespace: 'agents', serviceAccount: 'agent' }, logger },
    );
    after(() => verifier.close());
    const token = await oidcToken(oidc, { clientId: 'frank' });
    assert.equal((await verifier.authenticate(token, {})).subject, 'frank');
    const err = await until('the token is too old', () =>
      verifier.authenticate(token, {}).then(
        () => undefined,
        (e: IdentityError) => e,
      ),
    );
    assert.equal(err.code, 'expired');
    assert.match(err.message, /s old; the policy accepts tokens up to 1 s old/);
  });

  it('ends a running session within the re-check interval when its token is revoked', async () => {
    const receiver = await alertReceiver();
    const h = await startHarness(postgres, {
      config: {
        identity: { issuers: [oidcIssuer(await secretFile(dir))], liveness: { recheckSeconds: 1 } },
        alerts: { webhookUrl: receiver.url },
      },
    });
    after(() => h.close());
    const token = await oidcToken(oidc, { clientId: 'bob', audience: OPAQUE });
    const client = new pg.Client(h.clientConfig(token));
    const ended = new Promise<Error>((resolve) => client.on('error', resolve));
    await client.connect();
    assert.equal((await client.query('SELECT 1 AS one')).rows[0].one, 1);
    const revokedAt = Date.now();
    await oidcRevoke(oidc, token, 'bob');
    const err = await ended;
    const tookMs = Date.now() - revokedAt;
    assert.match(err.message, /session ended, identity no longer valid: .*not active/);
    assert.ok(tookMs < 5000, `session ended ${tookMs} ms after the revocation (re-check every 1 s)`);
    await client.end().catch(() => undefined);
    const events = await h.waitForSession((evs) => kinds(evs, 'identity.revoked').length > 0);
    assert.match(String(kinds(events, 'identity.revoked')[0]!.payload.message), /not active/);
    assert.equal(kinds(events, 'session.end').length, 1);
    // The next session with the same token is refused at login.
    const again = new pg.Client(h.clientConfig(token));
    await assert.rejects(again.connect(), /not active/);
    await again.end().catch(() => undefined);
    await until('identityRevoked alert', () => receiver.texts.find((t) => t.includes('identity revoked')));
  });

  it('refuses an offboarded identity with the date, in the message, the recording and the alert', async () => {
    const receiver = await alertReceiver();
    const list = join(dir, 'offboarded.json');
    const date = new Date(Date.now() - 12 * 86_400_000).toISOString().slice(0, 10);
    await writeFile(list, JSON.stringify([{ subject: 'carol', date }]));
    const h = await startHarness(postgres, {
      config: {
        identity: {
          issuers: [oidcIssuer(await secretFile(dir))],
          offboarding: { file: list, action: 'deny' },
        },
        alerts: { webhookUrl: receiver.url },
      },
      sidecar: {
        pod: {
          serviceAccount: 'agent',
          pod: 'nightly-x1',
          namespace: 'agents',
          podUid: 'uid-9',
          launcher: { username: 'dave', via: { kind: 'Job', namespace: 'agents', name: 'nightly' } },
        },
      },
    });
    after(() => h.close());
    const token = await oidcToken(oidc, { clientId: 'carol', audience: OPAQUE });
    const client = new pg.Client(h.clientConfig(token));
    const refused = await client.connect().then(
      () => assert.fail('an offboarded identity got in'),
      (e: Error) => e,
    );
    await client.end().catch(() => undefined);
    assert.match(
      refused.message,
      new RegExp(`token of carol used 1[12] days after carol's offboarding on ${date}`),
    );
    const events = await h.waitForSession((evs) => kinds(evs, 'identity.denied').length > 0);
    const denied = kinds(events, 'identity.denied')[0]!.payload;
    assert.equal(denied.code, 'offboarded');
    assert.match(String(denied.message), new RegExp(date));
    const header = kinds(events, 'session.start')[0]!.payload as { identity: { launchedBy?: string } };
    assert.equal(header.identity.launchedBy, 'dave');
    const alert = await until('offboarded alert', () => receiver.texts.find((t) => t.includes(date)));
    assert.match(alert, /offboarded identity/);
    assert.match(alert, /launched by dave \(Job\/nightly\)/);
  });

  it('flags an offboarded launcher when the policy says flag, and records why', async () => {
    const list = join(dir, 'offboarded-flag.txt');
    await writeFile(list, '# subject date\ndave 2026-01-02\n');
    const h = await startHarness(postgres, {
      config: {
        identity: {
          issuers: [oidcIssuer(await secretFile(dir))],
          offboarding: { file: list, action: 'flag' },
        },
      },
      sidecar: {
        pod: {
          serviceAccount: 'agent',
          pod: 'nightly-x2',
          namespace: 'agents',
          launcher: { username: 'dave', via: { kind: 'CronJob', namespace: 'agents', name: 'nightly' } },
        },
      },
    });
    after(() => h.close());
    const token = await oidcToken(oidc, { clientId: 'erin', audience: OPAQUE });
    const client = new pg.Client(h.clientConfig(token));
    await client.connect();
    await client.query('SELECT 1');
    await client.end();
    const events = await h.waitForSession((evs) => kinds(evs, 'identity.flagged').length > 0);
    assert.match(
      String(kinds(events, 'identity.flagged')[0]!.payload.message),
      /workload launched by dave used \d+ days after dave's offboarding on 2026-01-02/,
    );
    const header = kinds(events, 'session.start')[0]!.payload as {
      identity: { subject: string; launchedBy: string; attribution: { token: { subject: string } } };
    };
    assert.equal(header.identity.subject, 'erin');
    assert.equal(header.identity.launchedBy, 'dave');
    assert.equal(header.identity.attribution.token.subject, 'erin');
  });
});

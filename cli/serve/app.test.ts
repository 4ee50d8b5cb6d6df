// The viewer over HTTP, without a browser: the gate (shared token, cookies, OIDC access tokens from
// the real test provider), CSRF and redirect checks, security headers, no write path, and the
// `chaperone serve` command itself.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { generateSigningKey, listSessions, openStore } from '../../recording/index.ts';
import { tempDir } from '../../recording/testing/fixtures.ts';
import { testEnv } from '../../test/env/index.ts';
import { oidcToken } from '../../test/env/oidc.ts';
import { buildSearchIndex } from '../search/build.ts';
import { buildViewer, COOKIE, CSP } from './app.ts';
import { Gate } from './auth.ts';
import { escapeHtml, html } from './html.ts';
import {
  filterSessions,
  IndexCache,
  loadIndex,
  readOnly,
  SessionSource,
  type ViewerFilter,
} from './source.ts';
import { recordFixtures, XSS_SQL } from './testing/recordings.ts';

const env = await testEnv(['oidc']);
const dir = await tempDir('viewer-app');
const storeUrl = `file://${join(dir, 'store')}`;
const key = generateSigningKey();
const ids = await recordFixtures(dir, storeUrl, undefined, key);
const TOKEN = 'a-long-enough-viewer-token-for-tests';
const source = new SessionSource(openStore(storeUrl), [key.publicKeyPem]);

const tokenApp = await buildViewer({ source, gate: new Gate({ mode: 'token', token: TOKEN }) });
after(() => tokenApp.close());
const bearer = { authorization: `Bearer ${TOKEN}` };

async function signInCookie(app = tokenApp, token = TOKEN): Promise<string> {
  const r = await app.inject({
    method: 'POST',
    url: '/login',
    headers: { 'content-type': 'application/x-www-form-urlencoded', 'sec-fetch-site': 'same-origin' },
    payload: new URLSearchParams({ token, next: '/' }).toString(),
  });
  assert.equal(r.statusCode, 303);
  assert.match(String(r.headers['set-cookie']), /; Path=\/; HttpOnly; SameSite=Strict; Max-Age=\d+$/);
  const cookie = /chaperone_viewer=([^;]+)/.exec(String(r.headers['set-cookie']))?.[1];
  assert.ok(cookie, 'a session cookie');
  return `${COOKIE}=${cookie}`;
}

describe('html escaping', () => {
  test('every interpolated string is escaped; fragments nest without double escaping', () => {
    assert.equal(
      escapeHtml(`<a href="x" onclick='y'>&\``),
      '&lt;a href=&quot;x&quot; onclick=&#39;y&#39;&gt;&amp;&#96;',
    );
    const inner = html`<b>${'<i>'}</b>`;
    assert.equal(
      String(html`<p title="${'"quoted"'}">${inner}${['<', html`<br>`]}</p>`),
      '<p title="&quot;quoted&quot;"><b>&lt;i&gt;</b>&lt;<br></p>',
    );
  });
});

describe('the listing', () => {
  test('loadIndex and filterSessions keep what listSessions keeps', async () => {
    const store = openStore(storeUrl);
    const ids = async (it: AsyncIterable<{ sessionId: string }>) => {
      const out: string[] = [];
      for await (const s of it) out.push(s.sessionId);
      return out.sort();
    };
    const all = await loadIndex(store, 3);
    assert.equal(all.length, 4);
    assert.deepEqual(all.map((s) => s.sessionId).sort(), await ids(listSessions(store)));
    const filters: ViewerFilter[] = [
      { subject: 'alice@example.com' },
      { subject: 'report-bot' },
      { subject: 'system:serviceaccount:*' },
      { namespace: 'agents', pod: 'report-bot-*' },
      { target: '*-api' },
      { since: Date.now() - 3_600_000, until: Date.now() + 60_000 },
      { until: Date.now() - 3_600_000 },
      { namespace: 'nope' },
    ];
    for (const f of filters) {
      assert.deepEqual(
        filterSessions(all, f)
          .map((s) => s.sessionId)
          .sort(),
        await ids(listSessions(store, f)),
        JSON.stringify(f),
      );
    }
  });
});

describe('the gate (shared token)', () => {
  test('no credentials: browsers go to sign-in, other clients get 401', async () => {
    const page = await tokenApp.inject({ url: `/sessions/${ids.sql}`, headers: { accept: 'text/html' } });
    assert.equal(page.statusCode, 303);
    assert.equal(page.headers.location, `/login?next=${encodeURIComponent(`/sessions/${ids.sql}`)}`);
    const api = await tokenApp.inject({ url: '/' });
    assert.equal(api.statusCode, 401);
    assert.equal(api.headers['www-authenticate'], 'Bearer realm="chaperone"');
    assert.equal(
      (await tokenApp.inject({ url: '/', headers: { authorization: 'Bearer wrong-token-wrong-token' } }))
        .statusCode,
      401,
    );
  });

  test('a bearer token or the session cookie opens it; a forged or expired cookie does not', async () => {
    const r = await tokenApp.inject({ url: `/sessions/${ids.sql}`, headers: bearer });
    assert.equal(r.statusCode, 200);
    assert.ok(r.body.includes(escapeHtml(XSS_SQL)));
    assert.ok(!r.body.includes('<script>window.__xss'));
    const cookie = await signInCookie();
    assert.equal((await tokenApp.inject({ url: '/', headers: { cookie } })).statusCode, 200);
    const [name, value] = cookie.split('=') as [string, string];
    const [body, mac] = value.split('.') as [string, string];
    const forged = Buffer.from(JSON.stringify({ sub: 'admin', exp: 9_999_999_999 })).toString('base64url');
    assert.equal(
      (await tokenApp.inject({ url: '/', headers: { cookie: `${name}=${forged}.${mac}` } })).statusCode,
      401,
    );
    assert.notEqual(body, forged);
    // A cookie of another viewer process (another key) is refused too.
    const other = await buildViewer({ source, gate: new Gate({ mode: 'token', token: TOKEN }) });
    assert.equal((await other.inject({ url: '/', headers: { cookie } })).statusCode, 401);
    await other.close();
    const gate = new Gate({ mode: 'token', token: TOKEN });
    assert.equal(
      gate.fromCookie(gate.sessionCookie({ subject: 'token', exp: Math.floor(Date.now() / 1000) - 1 })),
      undefined,
    );
  });

  test('sign-in: wrong token, cross-site posts and foreign redirects are refused', async () => {
    const form = { 'content-type': 'application/x-www-form-urlencoded' };
    const wrong = await tokenApp.inject({
      method: 'POST',
      url: '/login',
      headers: form,
      payload: 'token=nope&next=%2F',
    });
    assert.equal(wrong.statusCode, 303);
    assert.match(String(wrong.headers.location), /^\/login\?failed=1/);
    assert.equal(wrong.headers['set-cookie'], undefined);
    const crossSite = await tokenApp.inject({
      method: 'POST',
      url: '/login',
      headers: { ...form, 'sec-fetch-site': 'cross-site' },
      payload: new URLSearchParams({ token: TOKEN }).toString(),
    });
    assert.equal(crossSite.statusCode, 403);
    const foreignOrigin = await tokenApp.inject({
      method: 'POST',
      url: '/login',
      headers: { ...form, origin: 'https://evil.example' },
      payload: new URLSearchParams({ token: TOKEN }).toString(),
    });
    assert.equal(foreignOrigin.statusCode, 403);
    for (const next of ['//evil.example/x', 'https://evil.example/', '/\\evil.example']) {
      const r = await tokenApp.inject({
        method: 'POST',
        url: '/login',
        headers: form,
        payload: new URLSearchParams({ token: TOKEN, next }).toString(),
      });
      assert.equal(r.headers.location, '/', next);
    }
    assert.throws(() => new Gate({ mode: 'token', token: 'short' }), /at least 16 characters/);
    const behindProxy = await buildViewer({
      source,
      gate: new Gate({ mode: 'token', token: TOKEN }),
      secureCookie: true,
    });
    const secure = await behindProxy.inject({
      method: 'POST',
      url: '/login',
      headers: form,
      payload: new URLSearchParams({ token: TOKEN }).toString(),
    });
    assert.match(String(secure.headers['set-cookie']), /; Secure$/);
    await behindProxy.close();
  });
});

describe('read-only and hardened', () => {
  test('security headers on pages and assets', async () => {
    for (const url of ['/login', '/assets/viewer.js', `/sessions/${ids.terminal}`]) {
      const r = await tokenApp.inject({ url, headers: bearer });
      assert.equal(r.statusCode, 200, url);
      assert.equal(r.headers['content-security-policy'], CSP);
      assert.equal(r.headers['x-content-type-options'], 'nosniff');
      assert.equal(r.headers['x-frame-options'], 'DENY');
      assert.equal(r.headers['referrer-policy'], 'no-referrer');
    }
    assert.doesNotMatch(CSP, /'unsafe-inline'|'unsafe-eval'/);
    assert.equal((await tokenApp.inject({ url: '/assets/../app.ts' })).statusCode, 404);
  });

  test('no route writes, and the store the viewer holds cannot be written', async () => {
    for (const method of ['PUT', 'DELETE', 'PATCH', 'POST'] as const) {
      const r = await tokenApp.inject({ method, url: `/sessions/${ids.sql}`, headers: bearer, payload: '' });
      assert.equal(r.statusCode, 404, method);
    }
    const routes = tokenApp.printRoutes({ commonPrefix: false });
    const posts = [...routes.matchAll(/(\S+) \(([^)]*POST[^)]*)\)/g)].map((m) => m[1]);
    assert.deepEqual(posts.sort(), ['login', 'logout']);
    await assert.rejects(
      readOnly(openStore(storeUrl)).put('x', Buffer.from('y'), {
        sha256: Buffer.alloc(32),
        contentType: 'text/plain',
      }),
      /read-only/,
    );
  });

  test('the asciicast of a channel, and 404s for unknown sessions and channels', async () => {
    const cast = await tokenApp.inject({ url: `/sessions/${ids.terminal}/cast/0`, headers: bearer });
    assert.equal(cast.statusCode, 200);
    const lines = cast.body
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    assert.equal(lines[0].version, 2);
    assert.ok(
      lines.some((l) => Array.isArray(l) && l[1] === 'o' && String(l[2]).includes('hello-from-the-terminal')),
    );
    assert.equal(
      (await tokenApp.inject({ url: `/sessions/${ids.terminal}/cast/9`, headers: bearer })).statusCode,
      404,
    );
    assert.equal(
      (await tokenApp.inject({ url: '/sessions/no-such-session', headers: bearer })).statusCode,
      404,
    );
    assert.equal((await tokenApp.inject({ url: '/sessions/..%2Fx', headers: bearer })).statusCode, 404);
    const bad = await tokenApp.inject({ url: '/?since=yesterday-ish', headers: bearer });
    assert.equal(bad.statusCode, 400);
    assert.match(bad.body, /invalid time/);
  });
});

describe('verification in the list', () => {
  test('?verify=1 verifies every session of the page', async () => {
    const app = await buildViewer({
      source: new SessionSource(openStore(storeUrl), [key.publicKeyPem]),
      gate: new Gate({ mode: 'token', token: TOKEN }),
    });
    after(() => app.close());
    const before = await app.inject({ url: '/', headers: bearer });
    assert.equal(before.body.match(/not checked yet/g)?.length, 4);
    assert.match(before.body, /href="\/\?verify=1"/);
    const after_ = await app.inject({ url: '/?verify=1', headers: bearer });
    assert.equal(after_.body.match(/badge ok">verified</g)?.length, 4);
    assert.doesNotMatch(after_.body, /not checked yet/);
    // Verified with another key, every session fails.
    const otherKey = generateSigningKey();
    const wrongKeys = await buildViewer({
      source: new SessionSource(openStore(storeUrl), [otherKey.publicKeyPem]),
      gate: new Gate({ mode: 'token', token: TOKEN }),
    });
    after(() => wrongKeys.close());
    const failed = await wrongKeys.inject({ url: '/?verify=1', headers: bearer });
    assert.equal(failed.body.match(/verification failed/g)?.length, 4);
  });
});

describe('the gate (OIDC access tokens from the test provider)', () => {
  test('tokens of the issuer and audience open it; other audiences and subjects do not', async () => {
    const gate = new Gate({
      mode: 'oidc',
      issuer: env.oidc.issuer,
      audience: env.oidc.audience,
      subjects: ['auditor-1'],
    });
    const app = await buildViewer({ source, gate });
    after(() => app.close());
    const auditor = await oidcToken(env.oidc, { clientId: 'auditor-1' });
    const r = await app.inject({ url: '/', headers: { authorization: `Bearer ${auditor}` } });
    assert.equal(r.statusCode, 200);
    assert.match(r.body, /Signed in as <strong>auditor-1<\/strong>/);
    const cookie = await signInCookie(app, auditor);
    assert.equal((await app.inject({ url: '/', headers: { cookie } })).statusCode, 200);
    const stranger = await oidcToken(env.oidc, { clientId: 'someone-else' });
    assert.equal(
      (await app.inject({ url: '/', headers: { authorization: `Bearer ${stranger}` } })).statusCode,
      401,
    );
    const otherAudience = await oidcToken(env.oidc, {
      clientId: 'auditor-1',
      audience: 'urn:chaperone:other',
    });
    assert.equal(
      (await app.inject({ url: '/', headers: { authorization: `Bearer ${otherAudience}` } })).statusCode,
      401,
    );
    // The shared token mode's secret is no OIDC token.
    assert.equal((await app.inject({ url: '/', headers: bearer })).statusCode, 401);
  });
});

describe('chaperone serve', () => {
  test('serves until SIGTERM; refuses to start without a token', async () => {
    const tokenFile = join(dir, 'viewer-token');
    await writeFile(tokenFile, `${TOKEN}\n`);
    const pub = join(dir, 'viewer.pub');
    await writeFile(pub, key.publicKeyPem);
    const main = new URL('../main.ts', import.meta.url).pathname;
    const child = spawn(
      process.execPath,
      [
        main,
        'serve',
        '--store',
        storeUrl,
        '--public-key',
        pub,
        '--listen',
        '127.0.0.1:0',
        '--token-file',
        tokenFile,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    after(() => child.kill('SIGKILL'));
    let out = '';
    const address = await new Promise<string>((resolve, reject) => {
      child.stdout.on('data', (d) => {
        out += d;
        const m = /viewer on (http:\/\/127\.0\.0\.1:\d+)/.exec(out);
        if (m) resolve(m[1]!);
      });
      child.once('exit', (code) => reject(new Error(`serve exited ${code}: ${out}`)));
    });
    assert.match(out, /auth: token.*read-only/);
    assert.equal((await fetch(`${address}/healthz`)).status, 200);
    assert.equal((await fetch(`${address}/`)).status, 401);
    const page = await fetch(`${address}/?subject=alice@example.com`, { headers: bearer });
    assert.equal(page.status, 200);
    assert.match(await page.text(), new RegExp(ids.terminal));
    child.kill('SIGTERM');
    const [code] = await once(child, 'exit');
    assert.equal(code, 0);

    const noToken = spawn(process.execPath, [main, 'serve', '--store', storeUrl, '--public-key', pub], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, CHAPERONE_VIEWER_TOKEN: '' },
    });
    let err = '';
    noToken.stderr.on('data', (d) => {
      err += d;
    });
    const [code2] = await once(noToken, 'exit');
    assert.equal(code2, 1);
    assert.match(err, /--auth token needs --token-file or \$CHAPERONE_VIEWER_TOKEN/);
  });
});

// Last: it adds a Parquet search index to the shared store.
describe('the listing from the Parquet search index', () => {
  test('a listed session shows the report made on its page, and only for that version', async () => {
    const store = openStore(storeUrl);
    await buildSearchIndex(store);
    const cache = new IndexCache(store);
    const listed = await cache.refresh();
    assert.equal(listed.length, 4);
    assert.ok(cache.fromParquet > 0, 'sessions came from the Parquet partitions');
    assert.equal(cache.fromParquet + cache.lastReads, 4);
    const row = listed.find((s) => s.status !== 'open' && s.lastSegmentSha256 === null && s.signature === '');
    assert.ok(row, 'a session listed from Parquet');
    const viewer = new SessionSource(store, [key.publicKeyPem]);
    const index = await viewer.index(row.sessionId);
    assert.ok(index?.lastSegmentSha256, 'its index object names its last segment');
    assert.equal(viewer.knownVerification(row), undefined);
    const report = await viewer.verify(row.sessionId, index);
    assert.equal(viewer.knownVerification(row), report);
    assert.equal(viewer.knownVerification(index), report);
    assert.equal(viewer.knownVerification({ ...row, updatedAt: new Date(0).toISOString() }), undefined);
    assert.equal(viewer.knownVerification({ ...index, lastSegmentSha256: 'another' }), undefined);
  });
});

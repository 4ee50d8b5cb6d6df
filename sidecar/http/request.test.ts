import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { guardrailSchema } from '../../crds/schema/session-policy.ts';
import { createMasker } from '../policy/index.ts';
import { BodyCapture } from './body-capture.ts';
import { createHttpGuard } from './guard.ts';
import { presentedToken, REDACTED, redactHeaders, upstreamRequestHeaders } from './headers.ts';
import { BodyMasker } from './json-mask.ts';
import { parseRequestTarget } from './path.ts';
import { heldBack, Scrubber, secretValues } from './scrub.ts';

test('request targets: decoded once for the guard, ambiguous forms refused', () => {
  const ok = parseRequestTarget('/api/%61dmin/x%20y?q=%2F');
  assert.deepEqual(ok, {
    ok: true,
    target: { rawPath: '/api/%61dmin/x%20y', path: '/api/admin/x y', query: 'q=%2F' },
  });
  for (const [url, why] of [
    ['http://other.example/admin', /origin-form/],
    ['other:443', /origin-form/],
    ['*', /origin-form/],
    ['//admin', /start with/],
    ['/a/../admin', /dot segment/],
    ['/a/%2e%2e/admin', /dot segment/],
    ['/a/%2E/admin', /dot segment/],
    ['/a//admin', /empty segment/],
    ['/a%2fadmin', /encoded "\/"/],
    ['/a%5Cadmin', /encoded/],
    ['/a\\admin', /backslash/],
    ['/a/%252e%252e/admin', /double percent/],
    ['/a/%zz', /malformed/],
    ['/a/%ff', /UTF-8/],
    ['/a/%00', /control/],
    ['/a#frag', /fragment/],
  ] as const) {
    const r = parseRequestTarget(url);
    assert.equal(r.ok, false, url);
    if (!r.ok) assert.match(r.problem, why, url);
  }
  // A trailing slash is one empty final segment, not "//".
  assert.equal(parseRequestTarget('/a/').ok, true);
});

test('request headers: identity, hop-by-hop and spoofable headers removed, method overrides refused', () => {
  const plan = upstreamRequestHeaders(
    {
      authorization: 'Bearer agent-token',
      host: 'evil.example',
      connection: 'keep-alive, x-secret-hop',
      'x-secret-hop': '1',
      'transfer-encoding': 'chunked',
      'x-forwarded-for': '10.0.0.1',
      forwarded: 'for=10.0.0.1',
      accept: 'application/json',
    },
    { identityHeader: 'authorization' },
  );
  assert.deepEqual(plan, { upstream: { accept: 'application/json' } });
  assert.match(
    upstreamRequestHeaders({ 'x-http-method-override': 'DELETE' }, { identityHeader: 'authorization' })
      .refused ?? '',
    /method override/,
  );
  assert.match(
    upstreamRequestHeaders(
      { 'impersonate-user': 'admin' },
      { identityHeader: 'authorization', refusedPrefixes: ['impersonate-'] },
    ).refused ?? '',
    /impersonate-user/,
  );
  assert.equal(presentedToken({ authorization: 'Bearer abc.def' }, 'authorization'), 'abc.def');
  assert.equal(presentedToken({ authorization: 'Basic abc' }, 'authorization'), undefined);
  assert.equal(presentedToken({ 'x-agent-token': ' t ' }, 'X-Agent-Token'), 't');
  assert.deepEqual(
    redactHeaders(
      { Authorization: 'Bearer x', cookie: 'a=b', 'x-api-key': 'k', 'x-agent': 't', accept: '*/*' },
      ['x-agent'],
    ),
    { authorization: REDACTED, cookie: REDACTED, 'x-api-key': REDACTED, 'x-agent': REDACTED, accept: '*/*' },
  );
});

test('body capture: hash and length of the whole body, a prefix up to the cap, UTF-8 kept whole', () => {
  const body = Buffer.from('héllo wörld, '.repeat(100));
  const c = new BodyCapture(9);
  for (let i = 0; i < body.length; i += 7) c.update(body.subarray(i, i + 7));
  const s = c.summary('text/plain');
  assert.equal(s.bytes, body.length);
  assert.equal(s.sha256, createHash('sha256').update(body).digest('hex'));
  assert.equal(s.truncated, true);
  // 9 bytes end inside "ö": the cut sequence is dropped, the rest is text.
  assert.equal(s.text, 'héllo w');
  const bin = new BodyCapture(4);
  bin.update(Buffer.from([0xff, 0x00, 0xfe]));
  assert.deepEqual(bin.summary(undefined), {
    bytes: 3,
    sha256: createHash('sha256')
      .update(Buffer.from([0xff, 0x00, 0xfe]))
      .digest('hex'),
    truncated: false,
    base64: '/wD+',
  });
});

test('http guardrails: methods and RE2 path, first match wins, rules for other protocols ignored', () => {
  const guard = createHttpGuard(
    [
      { name: 'sql', match: { sqlClasses: ['drop'] }, action: 'block' },
      { name: 'no-delete', match: { httpMethods: ['delete'] }, action: 'block', message: 'no deletes' },
      { name: 'admin', match: { pathPattern: '(?i)^/admin(/|$)' }, action: 'requireApproval' },
      { name: 'kube-only', match: { kubernetes: { verbs: ['get'] } }, action: 'block' },
      { name: 'other', targets: ['other'], match: { httpMethods: ['GET'] }, action: 'block' },
    ],
    'api',
    false,
  );
  assert.deepEqual(guard.decide('DELETE', '/x'), {
    action: 'block',
    rule: 'no-delete',
    message: 'no deletes',
  });
  assert.deepEqual(guard.decide('GET', '/ADMIN/users'), { action: 'requireApproval', rule: 'admin' });
  assert.deepEqual(guard.decide('GET', '/administrator'), { action: 'allow' });
  assert.deepEqual(guard.decide('GET', '/x'), { action: 'allow' });
});

test('http guardrails: jsonBody conditions read the body only when a rule needs it; unreadable bodies meet them', () => {
  const guard = createHttpGuard(
    [
      { name: 'reads', match: { httpMethods: ['GET'] }, action: 'allow' },
      {
        name: 'no-wipe',
        match: {
          httpMethods: ['POST'],
          jsonBody: [
            { field: 'action', pattern: '^wipe' },
            { field: 'target.0.env', pattern: '^prod$' },
          ],
        },
        action: 'block',
      },
      {
        name: 'big-scale',
        match: { httpMethods: ['PUT'], jsonBody: [{ field: 'spec.replicas', pattern: '^[0-9]{3,}$' }] },
        action: 'requireApproval',
      },
    ],
    'api',
    false,
  );
  assert.equal(guard.needsBody('GET', '/x'), false);
  assert.equal(guard.needsBody('POST', '/x'), true);
  assert.equal(guard.needsBody('DELETE', '/x'), false);
  const wipe = { json: { action: 'wipe-all', target: [{ env: 'prod' }] } };
  assert.equal(guard.decide('POST', '/x', undefined, wipe).rule, 'no-wipe');
  assert.equal(
    guard.decide('POST', '/x', undefined, { json: { action: 'wipe-all', target: [{ env: 'dev' }] } }).action,
    'allow',
  );
  assert.equal(guard.decide('POST', '/x', undefined, { json: { action: 'read' } }).action, 'allow');
  // Inherited properties are not fields of the body.
  assert.equal(
    guard.decide('POST', '/x', undefined, { json: { action: 'wipe', target: { 0: { env: 'prod' } } } }).rule,
    'no-wipe',
  );
  assert.equal(
    guard.decide('POST', '/x', undefined, { json: { action: 'wipe', target: [] } }).action,
    'allow',
  );
  assert.equal(guard.decide('POST', '/x', undefined, 'unreadable').rule, 'no-wipe');
  assert.equal(guard.decide('POST', '/x').action, 'allow', 'no body: no field holds');
  // Numbers are matched as their JSON text.
  assert.equal(
    guard.decide('PUT', '/x', undefined, { json: { spec: { replicas: 500 } } }).action,
    'requireApproval',
  );
  assert.equal(guard.decide('PUT', '/x', undefined, { json: { spec: { replicas: 5 } } }).action, 'allow');
  assert.equal(
    guard.decide('PUT', '/x', undefined, { json: { constructor: 1, spec: { toString: 1 } } }).action,
    'allow',
  );
});

test('guardrail schema: jsonBody needs httpMethods or kubernetes in the same rule', () => {
  const rule = { name: 'r', action: 'block', match: { jsonBody: [{ field: 'a', pattern: 'x' }] } };
  assert.equal(guardrailSchema.safeParse(rule).success, false);
  assert.equal(
    guardrailSchema.safeParse({ ...rule, match: { ...rule.match, httpMethods: ['POST'] } }).success,
    true,
  );
  assert.equal(
    guardrailSchema.safeParse({ ...rule, match: { ...rule.match, kubernetes: { verbs: ['create'] } } })
      .success,
    true,
  );
});

test('response masking: named JSON fields whole, detectors in every string, text bodies', () => {
  const masking = {
    columns: [{ pattern: '^(ssn|card)$', strategy: 'redact' as const }],
    detectors: [{ type: 'email' as const, strategy: 'redact' as const }],
    keepOriginals: false,
  };
  const m = new BodyMasker(createMasker(masking as never), masking as never);
  assert.equal(m.active, true);
  const r = m.maskBody(
    Buffer.from(
      JSON.stringify({
        users: [{ name: 'a', ssn: 123456789, card: { n: '4111' }, note: 'mail x@example.com' }],
      }),
    ),
    'application/json; charset=utf-8',
  );
  assert.ok(r);
  const doc = JSON.parse(r.body.toString());
  assert.notEqual(doc.users[0].ssn, 123456789);
  assert.equal(typeof doc.users[0].card, 'string');
  assert.doesNotMatch(doc.users[0].note, /x@example\.com/);
  assert.equal(doc.users[0].name, 'a');
  assert.deepEqual(r.masked.sort(), ['users[0].card', 'users[0].note', 'users[0].ssn']);
  const t = m.maskBody(Buffer.from('contact: x@example.com'), 'text/plain');
  assert.doesNotMatch(t?.body.toString() ?? '', /x@example\.com/);
  assert.equal(m.maskBody(Buffer.from([1, 2]), 'application/octet-stream'), undefined);
});

test('credential scrubber: a reflected credential is overwritten, also across chunk boundaries', async () => {
  const secrets = secretValues({ authorization: 'Bearer s3cr3t-token-value' });
  const body = Buffer.from('{"echo":"Bearer s3cr3t-token-value","again":"s3cr3t-token-value"}');
  const out: Buffer[] = [];
  const s = new Scrubber(secrets);
  s.on('data', (c: Buffer) => out.push(c));
  for (let i = 0; i < body.length; i += 5) s.write(body.subarray(i, i + 5));
  s.end();
  await new Promise((r) => s.once('end', r));
  const text = Buffer.concat(out).toString();
  assert.equal(text.length, body.length);
  assert.doesNotMatch(text, /s3cr3t/);
  assert.equal(s.hits, 2);
});

test('credential scrubber: ordinary data is never held back (a watch event goes out at once)', () => {
  const secrets = secretValues({ authorization: 'Bearer s3cr3t-token-value' });
  assert.equal(heldBack(Buffer.from('{"type":"ADDED"}\n'), secrets), 0);
  assert.equal(heldBack(Buffer.from('abc s3cr3t-tok'), secrets), 's3cr3t-tok'.length);
  assert.equal(heldBack(Buffer.from('abc Bearer s3'), secrets), 'Bearer s3'.length);
});

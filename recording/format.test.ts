// Golden tests of the signed formats: any change to the bytes we sign or store fails here (and
// must then be a deliberate format change, documented in docs/recording-format.md).
// UPDATE_GOLDEN=1 node --test recording/format.test.ts rewrites the golden files; a file in testdata
// that no test uses fails the suite.
import assert from 'node:assert/strict';
import { verify } from 'node:crypto';
import { test } from 'node:test';
import { goldenDir } from '../test/testing/golden.ts';
import { canonicalJson } from './canonical-json.ts';
import type { SessionHeader } from './events.ts';
import { buildIndex, emptyTotals, encodeIndex } from './index-record.ts';
import { checkSignature, loadPublicKeys, loadSigningKey, signedBytes } from './keys.ts';
import { indexKey, manifestName, newSessionId, segmentName, sessionPrefix } from './layout.ts';
import { buildManifest, encodeManifest } from './manifest.ts';

const testdata = goldenDir(new URL('./testdata/', import.meta.url));
const key = loadSigningKey(testdata.read('test-signing.key'));
const publicPem = testdata.read('test-signing.pub');

function golden(name: string, actual: string): void {
  testdata.check(name, actual);
}

test('canonical JSON: sorted keys, no whitespace, ECMAScript numbers and strings', () => {
  assert.equal(
    canonicalJson({ b: [3, { z: null, a: true }], a: 'é\u2028"\\', c: 1e21, d: 0.1, e: -0, u: undefined }),
    '{"a":"é\u2028\\"\\\\","b":[3,{"a":true,"z":null}],"c":1e+21,"d":0.1,"e":0}',
  );
  assert.equal(
    canonicalJson({ '\u00e9': 1, z: 2, Z: 3, '10': 4, '9': 5 }),
    '{"10":4,"9":5,"Z":3,"z":2,"é":1}',
  );
  assert.throws(() => canonicalJson({ x: Number.NaN }), /non-finite/);
  assert.throws(() => canonicalJson({ x: 1n }), /bigint/);
});

test('segment manifest: golden bytes, Ed25519 over the canonical JSON without signature', () => {
  const manifest = buildManifest(
    {
      sessionId: '01a207a2-3280-7a1b-8c3d-4e5f6a7b8c9d',
      index: 2,
      firstSeq: 1204,
      lastSeq: 2407,
      events: 1204,
      firstWallMs: 1795424400123,
      lastWallMs: 1795424410456,
      bytes: 61234,
      sha256: 'a'.repeat(64),
      rawBytes: 1048571,
      rawSha256: 'b'.repeat(64),
      prevSha256: 'c'.repeat(64),
      final: false,
      sealedAt: '2026-11-23T09:40:10.460Z',
    },
    key,
  );
  const bytes = encodeManifest(manifest).toString('utf8');
  golden('manifest.golden.json', bytes);
  const parsed = JSON.parse(bytes);
  // Independent check with plain node:crypto: what a third-party verifier would do.
  const { signature, ...body } = parsed;
  assert.ok(verify(null, Buffer.from(canonicalJson(body)), publicPem, Buffer.from(signature, 'base64')));
  assert.ok(signedBytes(parsed).equals(Buffer.from(canonicalJson(body))));
  assert.equal(checkSignature(parsed, loadPublicKeys(publicPem)).ok, true);
  assert.equal(checkSignature({ ...parsed, events: 1205 }, loadPublicKeys(publicPem)).ok, false);
});

test('session index: golden JSON line', () => {
  const header: SessionHeader = {
    sessionId: '01a207a2-3280-7a1b-8c3d-4e5f6a7b8c9d',
    protocol: 'postgres',
    target: { name: 'orders-db', host: '10.0.0.7', port: 5432 },
    identity: {
      subject: 'system:serviceaccount:agents:report-bot',
      serviceAccount: 'report-bot',
      pod: 'report-bot-7f9c',
      namespace: 'agents',
      node: 'node-1',
    },
    policy: { name: 'db-agents', namespace: 'agents', generation: 3 },
    sidecarVersion: '0.1.0',
    labels: { dbUser: 'reporter' },
    startedAt: '2026-11-23T09:00:00.000Z',
    startedAtMs: 1795424400000,
    recorder: { format: 'chaperone.recording/v1', keyId: key.keyId, keyFingerprint: key.fingerprint },
  };
  const totals = {
    ...emptyTotals(),
    events: 2410,
    rawBytes: 2097152,
    segments: 3,
    lastSeq: 2409,
    lastSegmentSha256: 'd'.repeat(64),
  };
  totals.countsByKind = { 'session.start': 1, 'pg.query': 1204, 'pg.result': 1204, 'session.end': 1 };
  totals.commands = { total: 1204, sample: ['SELECT id, total FROM orders WHERE customer_id = $1'] };
  const index = buildIndex(
    {
      header,
      date: '2026-11-23',
      namespace: 'agents',
      status: 'ended',
      endedAtMs: 1795424420000,
      endReason: 'client terminated',
      totals,
    },
    key,
    1795424421000,
  );
  golden('index.golden.jsonl', encodeIndex(index).toString('utf8'));
});

test('key layout', () => {
  const loc = { sessionId: '01a207a2-3280-7a1b-8c3d-4e5f6a7b8c9d', date: '2026-11-23', namespace: 'agents' };
  assert.equal(
    sessionPrefix(loc),
    'sessions/date=2026-11-23/namespace=agents/session=01a207a2-3280-7a1b-8c3d-4e5f6a7b8c9d/',
  );
  assert.equal(segmentName(12), 'seg-000012.zst');
  assert.equal(manifestName(12), 'seg-000012.manifest.json');
  assert.equal(
    indexKey(loc),
    'index/date=2026-11-23/namespace=agents/01a207a2-3280-7a1b-8c3d-4e5f6a7b8c9d.json',
  );
  const a = newSessionId(1795424400000);
  assert.match(a, /^01a207a2-3280-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.ok(newSessionId(1795424400000) < newSessionId(1795424400001), 'ids sort by time');
});

test('every file in testdata is used', () => testdata.assertNoStrayFiles());

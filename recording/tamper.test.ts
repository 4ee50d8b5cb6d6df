// The tamper corpus: each way of altering a stored recording is detected, with its own reason.

import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { testEnv } from '../test/env/index.ts';
import {
  canonicalJson,
  generateSigningKey,
  loadSigningKey,
  openStore,
  readSession,
  VerificationError,
  verifySession,
} from './index.ts';
import { signDocument } from './keys.ts';
import { s3OptionsFor, s3UrlFor } from './testing/fixtures.ts';
import { minioTestStore, type RawBucket, rawBucket, recordStatements } from './testing/test-store.ts';

const env = await testEnv(['minio']);
const key = generateSigningKey();
const s3 = s3OptionsFor(env.minio);
let bucket: RawBucket;

interface Recorded {
  url: string;
  id: string;
  /** Bucket key of the session folder (ends with '/'). */
  folder: string;
  indexKey: string;
  segments: number;
}

async function record(name: string, signingKeyPem = key.privateKeyPem): Promise<Recorded> {
  const store = await minioTestStore(env.minio, `tamper-${name}`, { key });
  const rec = await store.recorder({ signingKey: signingKeyPem, seal: { maxBytes: 4096 } });
  const id = await recordStatements(rec, 60);
  await rec.close({ deadlineMs: 60_000 });
  const { folder, index } = await store.locate(id, 'agents');
  const report = await verifySession(store.open(), id, key.publicKeyPem);
  return { url: store.url, id, folder, indexKey: index, segments: report.segments };
}

const seg = (n: number) => `seg-${String(n).padStart(6, '0')}.zst`;
const man = (n: number) => `seg-${String(n).padStart(6, '0')}.manifest.json`;

async function expectFailure(r: Recorded, reason: string, segment?: number) {
  const report = await verifySession(openStore(r.url, s3), r.id, key.publicKeyPem);
  assert.equal(report.ok, false, 'tampering must be detected');
  assert.equal(report.failure?.reason, reason, report.failure?.message);
  if (segment !== undefined) assert.equal(report.failure?.segment, segment, report.failure?.message);
  assert.ok(report.failure!.message.length > 10);
  return report;
}

describe('tamper corpus (MinIO)', () => {
  before(() => {
    bucket = rawBucket(env.minio);
  });

  test('an untouched recording verifies', async () => {
    const r = await record('clean');
    assert.ok(r.segments >= 5, `enough segments to tamper with (${r.segments})`);
    const report = await verifySession(openStore(r.url, s3), r.id, key.publicKeyPem);
    assert.equal(report.ok, true, JSON.stringify(report.failure));
  });

  test('a flipped byte in a segment: segment-tampered, at that segment', async () => {
    const r = await record('flip');
    const body = await bucket.get(r.folder + seg(3));
    body[Math.floor(body.length / 2)]! ^= 0x01;
    await bucket.put(r.folder + seg(3), body);
    await expectFailure(r, 'segment-tampered', 3);
    // Readers stop there too, instead of returning altered events.
    await assert.rejects(
      async () => {
        for await (const _ of readSession(openStore(r.url, s3), r.id)) {
          // drain
        }
      },
      (err: unknown) =>
        err instanceof VerificationError && err.reason === 'segment-tampered' && err.segment === 3,
    );
  });

  test('a deleted segment: segment-missing', async () => {
    const r = await record('delete');
    await bucket.del(r.folder + seg(2));
    await bucket.del(r.folder + man(2));
    await expectFailure(r, 'segment-missing', 2);
    const r2 = await record('delete-object-only');
    await bucket.del(r2.folder + seg(4));
    await expectFailure(r2, 'segment-missing', 4);
  });

  test('two segments swapped: segment-reordered', async () => {
    const r = await record('swap');
    const [a, b] = await Promise.all([bucket.get(r.folder + seg(2)), bucket.get(r.folder + seg(3))]);
    await bucket.put(r.folder + seg(2), b);
    await bucket.put(r.folder + seg(3), a);
    await expectFailure(r, 'segment-reordered', 2);
    // Swapping segment and manifest together (renaming both) is caught by the signed index.
    const r2 = await record('swap-pairs');
    const [s2, m2, s3b, m3] = await Promise.all([
      bucket.get(r2.folder + seg(2)),
      bucket.get(r2.folder + man(2)),
      bucket.get(r2.folder + seg(3)),
      bucket.get(r2.folder + man(3)),
    ]);
    await Promise.all([
      bucket.put(r2.folder + seg(2), s3b),
      bucket.put(r2.folder + man(2), m3),
      bucket.put(r2.folder + seg(3), s2),
      bucket.put(r2.folder + man(3), m2),
    ]);
    await expectFailure(r2, 'segment-reordered', 2);
  });

  test('the last segment truncated: segment-truncated; the tail removed: session-truncated', async () => {
    const r = await record('truncate');
    const last = await bucket.get(r.folder + seg(r.segments));
    await bucket.put(r.folder + seg(r.segments), last.subarray(0, last.length - 7));
    await expectFailure(r, 'segment-truncated', r.segments);
    const r2 = await record('drop-tail');
    await bucket.del(r2.folder + seg(r2.segments));
    await bucket.del(r2.folder + man(r2.segments));
    const report = await expectFailure(r2, 'session-truncated');
    assert.match(
      report.failure!.message,
      new RegExp(`lists ${r2.segments} segments but only ${r2.segments - 1}`),
    );
  });

  test('an edited index: index-tampered', async () => {
    const r = await record('index');
    const index = JSON.parse((await bucket.get(r.indexKey)).toString('utf8'));
    index.subject = 'someone-else';
    await bucket.put(r.indexKey, Buffer.from(`${canonicalJson(index)}\n`));
    await expectFailure(r, 'index-tampered');
  });

  test('a manifest re-signed with another key: wrong-key; edited without re-signing: bad-signature', async () => {
    const attacker = loadSigningKey(generateSigningKey().privateKeyPem);
    const r = await record('resign');
    const m = JSON.parse((await bucket.get(r.folder + man(2))).toString('utf8'));
    const forged = signDocument(
      { ...m, keyId: attacker.keyId, keyFingerprint: attacker.fingerprint, signature: undefined },
      attacker,
    );
    await bucket.put(r.folder + man(2), Buffer.from(`${canonicalJson(forged)}\n`));
    await expectFailure(r, 'wrong-key', 2);

    const r2 = await record('edit-manifest');
    const m2 = JSON.parse((await bucket.get(r2.folder + man(3))).toString('utf8'));
    m2.events += 1;
    await bucket.put(r2.folder + man(3), Buffer.from(`${canonicalJson(m2)}\n`));
    await expectFailure(r2, 'bad-signature', 3);
  });

  test('a recording checked with the wrong public key: wrong-key at the first segment', async () => {
    const other = generateSigningKey();
    const r = await record('other-key', other.privateKeyPem);
    await expectFailure(r, 'wrong-key', 1);
    const ok = await verifySession(openStore(r.url, s3), r.id, [key.publicKeyPem, other.publicKeyPem]);
    assert.equal(ok.ok, true, 'any trusted key may have signed (key rotation)');
  });

  test('an unknown session: session-not-found', async () => {
    const report = await verifySession(
      openStore(s3UrlFor(env.minio, 'empty'), s3),
      'no-such-session',
      key.publicKeyPem,
    );
    assert.equal(report.failure?.reason, 'session-not-found');
  });
});

// Object Lock: uploaded segments carry a retention date; MinIO refuses to delete or replace them.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { DeleteObjectCommand, HeadObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { testEnv } from '../test/env/index.ts';
import { StoreError, verifySession } from './index.ts';
import { minioTestStore, rawBucket, recordStatements } from './testing/test-store.ts';

const env = await testEnv(['minio']);

test('a segment under retention cannot be deleted or overwritten in MinIO', async () => {
  const store = await minioTestStore(env.minio, 'lock');
  const rec = await store.recorder({ retention: { mode: 'COMPLIANCE', days: 1 } });
  const sessionId = await recordStatements(rec, 20);
  await rec.close({ deadlineMs: 60_000 });

  const bucket = rawBucket(env.minio);
  const { client } = bucket;
  const Bucket = bucket.name;
  const Key = `${(await store.locate(sessionId, 'agents')).folder}seg-000001.zst`;
  const head = await client.send(new HeadObjectCommand({ Bucket, Key }));
  assert.equal(head.ObjectLockMode, 'COMPLIANCE');
  const until = head.ObjectLockRetainUntilDate!.getTime();
  assert.ok(
    until > Date.now() + 23 * 3_600_000 && until < Date.now() + 25 * 3_600_000,
    `retain until ${head.ObjectLockRetainUntilDate}`,
  );
  const original = await bucket.get(Key);

  // Deleting the version itself is refused, even when asking to bypass governance.
  await assert.rejects(
    client.send(
      new DeleteObjectCommand({ Bucket, Key, VersionId: head.VersionId!, BypassGovernanceRetention: true }),
    ),
    (err: Error) => /WORM|AccessDenied|InvalidRequest/.test(`${err.name} ${err.message}`),
  );
  // A conditional overwrite is refused; an unconditional one only adds a newer version.
  await assert.rejects(
    client.send(new PutObjectCommand({ Bucket, Key, Body: Buffer.from('forged'), IfNoneMatch: '*' })),
    (err: Error) => err.name === 'PreconditionFailed',
  );
  const forged = Buffer.from(original);
  forged.write('forged', forged.length - 10);
  await bucket.put(Key, forged);
  const kept = await bucket.get(Key, head.VersionId!);
  assert.ok(kept.equals(original), 'the locked version is unchanged');
  // ... and the newer version does not pass verification.
  const report = await verifySession(store.open(), sessionId, store.key.publicKeyPem);
  assert.equal(report.failure?.reason, 'segment-tampered');

  // The recorder itself never replaces a segment: a different body at the same key is a conflict.
  const body = Buffer.from('another body');
  await assert.rejects(
    store.open().put(Key.slice(store.prefix.length + 1), body, {
      sha256: createHash('sha256').update(body).digest(),
      contentType: 'application/zstd',
      ifAbsent: true,
    }),
    (err: unknown) => err instanceof StoreError && err.code === 'conflict',
  );
});

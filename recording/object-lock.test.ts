// Object Lock: uploaded segments carry a retention date; MinIO refuses to delete or replace them.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
} from '@aws-sdk/client-s3';
import { testEnv } from '../test/env/index.ts';
import { generateSigningKey, openRecorder, openStore, StoreError, verifySession } from './index.ts';
import {
  rawS3,
  recordedDate,
  s3OptionsFor,
  s3UrlFor,
  sampleHeader,
  sqlEvents,
  tempDir,
} from './testing/fixtures.ts';

const env = await testEnv(['minio']);

test('a segment under retention cannot be deleted or overwritten in MinIO', async () => {
  const dir = await tempDir('lock');
  const key = generateSigningKey();
  const url = s3UrlFor(env.minio, 'lock');
  const s3 = s3OptionsFor(env.minio);
  const rec = await openRecorder({
    spoolDir: join(dir, 'spool'),
    store: url,
    s3,
    signingKey: key.privateKeyPem,
    retention: { mode: 'COMPLIANCE', days: 1 },
  });
  const s = await rec.startSession(sampleHeader());
  for (let i = 0; i < 20; i++) for (const e of sqlEvents(i)) await s.append(e);
  await s.end({ reason: 'done' });
  await rec.close({ deadlineMs: 60_000 });

  const client = rawS3(env.minio);
  const Bucket = env.minio.bucket;
  const prefix = url.slice(`s3://${Bucket}/`.length);
  const date = await recordedDate(openStore(url, s3), s.sessionId);
  const Key = `${prefix}/sessions/date=${date}/namespace=agents/session=${s.sessionId}/seg-000001.zst`;
  const head = await client.send(new HeadObjectCommand({ Bucket, Key }));
  assert.equal(head.ObjectLockMode, 'COMPLIANCE');
  const until = head.ObjectLockRetainUntilDate!.getTime();
  assert.ok(
    until > Date.now() + 23 * 3_600_000 && until < Date.now() + 25 * 3_600_000,
    `retain until ${head.ObjectLockRetainUntilDate}`,
  );
  const original = Buffer.from(
    await (await client.send(new GetObjectCommand({ Bucket, Key }))).Body!.transformToByteArray(),
  );

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
  await client.send(new PutObjectCommand({ Bucket, Key, Body: forged }));
  const kept = await client.send(new GetObjectCommand({ Bucket, Key, VersionId: head.VersionId! }));
  assert.ok(
    Buffer.from(await kept.Body!.transformToByteArray()).equals(original),
    'the locked version is unchanged',
  );
  // ... and the newer version does not pass verification.
  const report = await verifySession(openStore(url, s3), s.sessionId, key.publicKeyPem);
  assert.equal(report.failure?.reason, 'segment-tampered');

  // The recorder itself never replaces a segment: a different body at the same key is a conflict.
  const store = openStore(url, s3);
  const body = Buffer.from('another body');
  await assert.rejects(
    store.put(Key.slice(prefix.length + 1), body, {
      sha256: createHash('sha256').update(body).digest(),
      contentType: 'application/zstd',
      ifAbsent: true,
    }),
    (err: unknown) => err instanceof StoreError && err.code === 'conflict',
  );
});

import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import {
  CreateBucketCommand,
  DeleteObjectCommand,
  GetBucketVersioningCommand,
  GetObjectCommand,
  GetObjectLockConfigurationCommand,
  GetObjectRetentionCommand,
  PutObjectCommand,
} from '@aws-sdk/client-s3';
import { testEnv } from './index.ts';
import { s3ClientFor, startMinioServer } from './minio.ts';
import { httpOk } from './net.ts';

const { minio } = await testEnv(['minio']);
const s3 = s3ClientFor(minio);
after(() => s3.destroy());

test('the bucket has Object Lock, and so versioning, enabled', async () => {
  const lock = await s3.send(new GetObjectLockConfigurationCommand({ Bucket: minio.bucket }));
  assert.equal(lock.ObjectLockConfiguration?.ObjectLockEnabled, 'Enabled');
  const versioning = await s3.send(new GetBucketVersioningCommand({ Bucket: minio.bucket }));
  assert.equal(versioning.Status, 'Enabled');
});

test('a version under COMPLIANCE retention cannot be deleted', async () => {
  const key = `smoke/${randomUUID()}`;
  const body = Buffer.from('sealed segment');
  const retainUntil = new Date(Date.now() + 24 * 3600_000);
  const put = await s3.send(
    new PutObjectCommand({
      Bucket: minio.bucket,
      Key: key,
      Body: body,
      ChecksumSHA256: createHash('sha256').update(body).digest('base64'),
      ObjectLockMode: 'COMPLIANCE',
      ObjectLockRetainUntilDate: retainUntil,
    }),
  );
  assert.ok(put.VersionId, 'versioned put');
  const retention = await s3.send(
    new GetObjectRetentionCommand({ Bucket: minio.bucket, Key: key, VersionId: put.VersionId }),
  );
  assert.equal(retention.Retention?.Mode, 'COMPLIANCE');
  await assert.rejects(
    s3.send(new DeleteObjectCommand({ Bucket: minio.bucket, Key: key, VersionId: put.VersionId })),
    (err: Error) => /WORM|AccessDenied|retention/i.test(`${err.name} ${err.message}`),
  );
  const got = await s3.send(
    new GetObjectCommand({ Bucket: minio.bucket, Key: key, VersionId: put.VersionId }),
  );
  assert.equal(await got.Body?.transformToString(), 'sealed segment');
});

test("an Object Lock put with only the SDK's default CRC32 checksum is accepted", async () => {
  // Newer SDKs send x-amz-checksum-crc32 instead of Content-MD5; MinIO takes it for Object Lock.
  const key = `smoke/${randomUUID()}`;
  const put = await s3.send(
    new PutObjectCommand({
      Bucket: minio.bucket,
      Key: key,
      Body: 'default checksum',
      ObjectLockMode: 'GOVERNANCE',
      ObjectLockRetainUntilDate: new Date(Date.now() + 3600_000),
    }),
  );
  assert.ok(put.ChecksumCRC32, 'the SDK sent a CRC32 checksum');
  await assert.rejects(
    s3.send(new DeleteObjectCommand({ Bucket: minio.bucket, Key: key, VersionId: put.VersionId })),
  );
});

test('a wrong SHA-256 checksum is refused', async () => {
  await assert.rejects(
    s3.send(
      new PutObjectCommand({
        Bucket: minio.bucket,
        Key: `smoke/${randomUUID()}`,
        Body: 'payload',
        ChecksumSHA256: createHash('sha256').update('something else').digest('base64'),
      }),
    ),
    (err: Error) => /checksum|digest/i.test(`${err.name} ${err.message}`),
  );
});

test('a MinIO server can be stopped and restarted on the same port with its data', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'chaperone-minio-restart-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const started = Date.now();
  const server = await startMinioServer(dir);
  t.diagnostic(`warm start of minio: ${Date.now() - started} ms`);
  t.after(() => server.stop());
  const client = s3ClientFor(server.info);
  t.after(() => client.destroy());
  await client.send(new CreateBucketCommand({ Bucket: 'restart' }));
  await client.send(new PutObjectCommand({ Bucket: 'restart', Key: 'before', Body: 'survives' }));

  await server.stop();
  assert.equal(server.running, false);
  assert.equal(await httpOk(`${server.info.endpoint}/minio/health/live`), false, 'down while stopped');
  await assert.rejects(client.send(new GetObjectCommand({ Bucket: 'restart', Key: 'before' })));

  await server.start();
  assert.equal(server.running, true);
  const got = await client.send(new GetObjectCommand({ Bucket: 'restart', Key: 'before' }));
  assert.equal(await got.Body?.transformToString(), 'survives');
});

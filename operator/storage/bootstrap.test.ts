// Storage bootstrap against a real MinIO: buckets created with Object Lock, one lifecycle rule per
// retention (other rules kept), clear refusals; and end to end through the operator.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  CreateBucketCommand,
  GetBucketLifecycleConfigurationCommand,
  GetObjectLockConfigurationCommand,
  PutBucketLifecycleConfigurationCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { CoreV1Api, CustomObjectsApi } from '@kubernetes/client-node';
import { pino } from 'pino';
import { testEnv } from '../../test/env/index.ts';
import { kubeConfigFor } from '../../test/env/kube.ts';
import { s3ClientFor } from '../../test/env/minio.ts';
import {
  type OperatorUnderTest,
  samplePolicy,
  startOperatorInNamespace,
  uniqueName,
  waitFor,
} from '../testing/kube.ts';
import { StorageBootstrapper, StorageProblem } from './bootstrap.ts';
import { ruleId } from './lifecycle.ts';

const env = await testEnv(['kube', 'minio']);
const logger = pino({ level: 'silent' });

async function lifecycleRules(s3: S3Client, bucket: string) {
  return (await s3.send(new GetBucketLifecycleConfigurationCommand({ Bucket: bucket }))).Rules ?? [];
}

async function objectLockEnabled(s3: S3Client, bucket: string) {
  const lock = await s3.send(new GetObjectLockConfigurationCommand({ Bucket: bucket }));
  return lock.ObjectLockConfiguration?.ObjectLockEnabled === 'Enabled';
}

describe('StorageBootstrapper', () => {
  const s3 = s3ClientFor(env.minio);
  const credentials = { accessKeyId: env.minio.accessKeyId, secretAccessKey: env.minio.secretAccessKey };
  const location = (bucket: string) => ({
    endpoint: env.minio.endpoint,
    region: env.minio.region,
    forcePathStyle: true,
    bucket,
  });
  after(() => s3.destroy());

  it('creates a missing bucket with Object Lock and a lifecycle rule per prefix', async () => {
    const bucket = uniqueName('rec');
    const storage = new StorageBootstrapper({ logger, checkSeconds: 0 });
    await storage.ensure(location(bucket), credentials, {
      objectLock: true,
      retention: [
        { prefix: 'team-a/', days: 30 },
        { prefix: 'team-b/', days: 7 },
        { prefix: 'team-a/', days: 90 },
      ],
    });
    assert.equal(await objectLockEnabled(s3, bucket), true);
    const rules = await lifecycleRules(s3, bucket);
    const byId = new Map(rules.map((r) => [r.ID, r]));
    assert.equal(rules.length, 2);
    assert.equal(
      byId.get(ruleId('team-a/'))?.Expiration?.Days,
      90,
      'the longest retention of a shared prefix wins',
    );
    assert.equal(byId.get(ruleId('team-a/'))?.NoncurrentVersionExpiration?.NoncurrentDays, 90);
    assert.equal(byId.get(ruleId('team-a/'))?.Filter?.Prefix, 'team-a/');
    assert.equal(byId.get(ruleId('team-b/'))?.Expiration?.Days, 7);
    assert.equal(byId.get(ruleId('team-b/'))?.Status, 'Enabled');
  });

  it('updates its own rules and keeps everyone else’s', async () => {
    const bucket = uniqueName('rec');
    await s3.send(new CreateBucketCommand({ Bucket: bucket, ObjectLockEnabledForBucket: true }));
    await s3.send(
      new PutBucketLifecycleConfigurationCommand({
        Bucket: bucket,
        LifecycleConfiguration: {
          Rules: [
            { ID: 'someone-else', Status: 'Enabled', Filter: { Prefix: 'tmp/' }, Expiration: { Days: 1 } },
          ],
        },
      }),
    );
    const storage = new StorageBootstrapper({ logger, checkSeconds: 0 });
    await storage.ensure(location(bucket), credentials, {
      objectLock: true,
      retention: [{ prefix: '', days: 10 }],
    });
    await storage.ensure(location(bucket), credentials, {
      objectLock: true,
      retention: [{ prefix: '', days: 20 }],
    });
    const rules = await lifecycleRules(s3, bucket);
    assert.deepEqual(rules.map((r) => r.ID).sort(), [ruleId(''), 'someone-else'].sort());
    assert.equal(rules.find((r) => r.ID === ruleId(''))?.Expiration?.Days, 20);
    assert.equal(rules.find((r) => r.ID === 'someone-else')?.Expiration?.Days, 1);
  });

  it('refuses Object Lock on an existing bucket without it, and wrong credentials', async () => {
    const bucket = uniqueName('plain');
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
    const storage = new StorageBootstrapper({ logger, checkSeconds: 0 });
    await assert.rejects(
      storage.ensure(location(bucket), credentials, { objectLock: true, retention: [] }),
      (e: unknown) =>
        e instanceof StorageProblem && e.reason === 'ObjectLockNotEnabled' && e.message.includes(bucket),
    );
    // Without objectLock the same bucket is fine.
    await storage.ensure(location(bucket), credentials, {
      objectLock: false,
      retention: [{ prefix: 'x/', days: 3 }],
    });
    assert.equal((await lifecycleRules(s3, bucket)).length, 1);
    await assert.rejects(
      storage.ensure(
        location(bucket),
        { accessKeyId: 'nobody', secretAccessKey: 'wrong-secret-key' },
        { objectLock: false, retention: [] },
      ),
      (e: unknown) => e instanceof StorageProblem && e.reason === 'StoreAccessDenied',
    );
  });
});

describe('storage bootstrap through the operator', () => {
  const s3 = s3ClientFor(env.minio);
  const kc = kubeConfigFor(env.kube);
  const custom = kc.makeApiClient(CustomObjectsApi);
  let ns: string;
  let fixture: OperatorUnderTest | undefined;

  const store = (bucket: string) => ({
    url: `s3://${bucket}/${'recordings'}`,
    endpoint: env.minio.endpoint,
    region: env.minio.region,
    credentialsSecret: { name: 'store-credentials' },
  });
  const readyCondition = async (name: string) => {
    const p = (await custom.getNamespacedCustomObject({
      group: 'chaperone.dev',
      version: 'v1alpha1',
      plural: 'sessionpolicies',
      namespace: ns,
      name,
    })) as { status?: { conditions?: { type: string; status: string; reason: string; message: string }[] } };
    return p.status?.conditions?.find((c) => c.type === 'Ready');
  };

  before(async () => {
    fixture = await startOperatorInNamespace(kc, 'storage', {
      config: { storage: { bootstrap: true } },
      beforeStart: async (namespace) => {
        await kc.makeApiClient(CoreV1Api).createNamespacedSecret({
          namespace,
          body: {
            metadata: { name: 'store-credentials' },
            stringData: { accessKeyId: env.minio.accessKeyId, secretAccessKey: env.minio.secretAccessKey },
          },
        });
      },
    });
    ns = fixture.namespace;
  });

  after(async () => {
    await fixture?.stop();
    s3.destroy();
  });

  it('creates the bucket of a policy with Object Lock and its retention rule, then reports Ready', async () => {
    const bucket = uniqueName('policy-rec');
    const body = samplePolicy('s3', ns, {
      recording: {
        store: store(bucket),
        signingKeySecret: { name: 'signing-key' },
        retentionDays: 45,
        objectLock: { mode: 'GOVERNANCE' },
      },
    });
    await custom.createNamespacedCustomObject({
      group: 'chaperone.dev',
      version: 'v1alpha1',
      plural: 'sessionpolicies',
      namespace: ns,
      body,
    });
    await waitFor('s3 policy Ready', async () => (await readyCondition('s3'))?.status === 'True');
    assert.equal(await objectLockEnabled(s3, bucket), true);
    const rules = await lifecycleRules(s3, bucket);
    assert.equal(rules.find((r) => r.ID === ruleId('recordings/'))?.Expiration?.Days, 45);
  });

  it('reports Ready=False when the bucket exists without the Object Lock the policy asks for', async () => {
    const bucket = uniqueName('no-lock');
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
    const body = samplePolicy('nolock', ns, {
      recording: {
        store: store(bucket),
        signingKeySecret: { name: 'signing-key' },
        objectLock: { mode: 'COMPLIANCE' },
      },
    });
    await custom.createNamespacedCustomObject({
      group: 'chaperone.dev',
      version: 'v1alpha1',
      plural: 'sessionpolicies',
      namespace: ns,
      body,
    });
    const condition = await waitFor('nolock refused', async () => {
      const c = await readyCondition('nolock');
      return c?.status === 'False' ? c : undefined;
    });
    assert.equal(condition.reason, 'ObjectLockNotEnabled');
    assert.match(condition.message, new RegExp(bucket));
  });
});

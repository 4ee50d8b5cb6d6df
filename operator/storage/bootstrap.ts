// Storage bootstrap for s3:// recording stores: the bucket exists (created with Object Lock, which
// can only be switched on at creation on MinIO and most S3-compatible stores) and carries one
// lifecycle rule per retention. Problems a user must fix come back as StorageProblem with a
// condition reason; transient ones are thrown as they are and retried with backoff.
import {
  CreateBucketCommand,
  GetBucketLifecycleConfigurationCommand,
  GetObjectLockConfigurationCommand,
  HeadBucketCommand,
  type LifecycleRule,
  PutBucketLifecycleConfigurationCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import type { Logger } from 'pino';
import { mergeLifecycle, type RetentionRule } from './lifecycle.ts';

export interface StoreLocation {
  endpoint?: string;
  region: string;
  forcePathStyle: boolean;
  bucket: string;
}

export interface StoreCredentials {
  accessKeyId: string;
  secretAccessKey: string;
}

export interface StoreRequirements {
  objectLock: boolean;
  retention: RetentionRule[];
}

export class StorageProblem extends Error {
  readonly reason: string;
  constructor(reason: string, message: string) {
    super(message);
    this.name = 'StorageProblem';
    this.reason = reason;
  }
}

interface S3Error {
  name?: string;
  Code?: string;
  $metadata?: { httpStatusCode?: number };
}

function s3Status(error: unknown): number | undefined {
  return (error as S3Error)?.$metadata?.httpStatusCode;
}

function s3Name(error: unknown): string {
  const e = error as S3Error;
  return e?.name ?? e?.Code ?? '';
}

export function storeKey(store: StoreLocation): string {
  return `${store.endpoint ?? 'aws'}|${store.region}|${store.bucket}`;
}

export class StorageBootstrapper {
  readonly #logger: Logger;
  readonly #checkMs: number;
  /** storeKey -> (what was ensured, when): skips repeated checks of an unchanged store. */
  readonly #done = new Map<string, { wanted: string; at: number }>();

  constructor(options: { logger: Logger; checkSeconds: number }) {
    this.#logger = options.logger;
    this.#checkMs = options.checkSeconds * 1000;
  }

  async ensure(
    store: StoreLocation,
    credentials: StoreCredentials | undefined,
    wanted: StoreRequirements,
  ): Promise<void> {
    const key = storeKey(store);
    const wantedKey = JSON.stringify(wanted);
    const done = this.#done.get(key);
    if (done && done.wanted === wantedKey && Date.now() - done.at < this.#checkMs) return;

    const client = new S3Client({
      region: store.region,
      forcePathStyle: store.forcePathStyle,
      ...(store.endpoint ? { endpoint: store.endpoint } : {}),
      ...(credentials ? { credentials } : {}),
      maxAttempts: 2,
    });
    try {
      await this.#ensureBucket(client, store, wanted.objectLock);
      await this.#ensureLifecycle(client, store, wanted.retention);
      this.#done.set(key, { wanted: wantedKey, at: Date.now() });
    } catch (error) {
      this.#done.delete(key);
      throw error;
    } finally {
      client.destroy();
    }
  }

  async #ensureBucket(client: S3Client, store: StoreLocation, objectLock: boolean): Promise<void> {
    const { bucket } = store;
    try {
      await client.send(new HeadBucketCommand({ Bucket: bucket }));
    } catch (error) {
      const status = s3Status(error);
      if (status === 403) {
        throw new StorageProblem(
          'StoreAccessDenied',
          `access to bucket "${bucket}" denied: check the store credentials`,
        );
      }
      if (status !== 404 && s3Name(error) !== 'NotFound' && s3Name(error) !== 'NoSuchBucket') throw error;
      try {
        await client.send(
          new CreateBucketCommand({
            Bucket: bucket,
            ObjectLockEnabledForBucket: true,
            ...(store.region !== 'us-east-1'
              ? { CreateBucketConfiguration: { LocationConstraint: store.region as never } }
              : {}),
          }),
        );
        this.#logger.info({ bucket, endpoint: store.endpoint }, 'bucket created with Object Lock');
      } catch (createError) {
        if (s3Name(createError) !== 'BucketAlreadyOwnedByYou') throw createError;
      }
    }
    if (!objectLock) return;
    let enabled = false;
    try {
      const lock = await client.send(new GetObjectLockConfigurationCommand({ Bucket: bucket }));
      enabled = lock.ObjectLockConfiguration?.ObjectLockEnabled === 'Enabled';
    } catch (error) {
      if (s3Name(error) !== 'ObjectLockConfigurationNotFoundError' && s3Status(error) !== 404) throw error;
    }
    if (!enabled) {
      throw new StorageProblem(
        'ObjectLockNotEnabled',
        `bucket "${bucket}" exists without Object Lock but recording.objectLock is set; Object Lock can only be enabled when a bucket is created: use a new bucket or remove recording.objectLock`,
      );
    }
  }

  async #ensureLifecycle(client: S3Client, store: StoreLocation, retention: RetentionRule[]): Promise<void> {
    if (retention.length === 0) return;
    let existing: LifecycleRule[] = [];
    try {
      const current = await client.send(new GetBucketLifecycleConfigurationCommand({ Bucket: store.bucket }));
      existing = current.Rules ?? [];
    } catch (error) {
      if (s3Name(error) !== 'NoSuchLifecycleConfiguration' && s3Status(error) !== 404) throw error;
    }
    const rules = mergeLifecycle(existing, retention);
    if (!rules) return;
    await client.send(
      new PutBucketLifecycleConfigurationCommand({
        Bucket: store.bucket,
        LifecycleConfiguration: { Rules: rules },
      }),
    );
    this.#logger.info({ bucket: store.bucket, rules: rules.length }, 'lifecycle rules updated');
  }
}

// S3 and S3-compatible stores (AWS S3, MinIO). Each object is one PutObject (visible at once, no
// multipart leftovers) with its SHA-256 checked by the server, `If-None-Match: *` so a segment is
// never replaced, and Object Lock retention when asked.

import { createHash } from 'node:crypto';
import {
  GetObjectCommand,
  ListObjectsV2Command,
  type ListObjectsV2CommandOutput,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { StoreError } from '../errors.ts';
import type { PutOptions, SegmentStore } from './store.ts';

export interface S3Options {
  endpoint?: string;
  region?: string;
  forcePathStyle?: boolean;
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** SDK attempts per request (the recorder retries itself, so it asks for 1). */
  maxAttempts?: number;
  requestTimeoutMs?: number;
}

export function parseS3Url(url: string): { bucket: string; prefix: string } {
  const m = /^s3:\/\/([^/]+)\/?(.*)$/.exec(url);
  if (!m?.[1])
    throw new StoreError(
      'other',
      `invalid S3 store URL ${JSON.stringify(url)}: expected s3://bucket[/prefix]`,
    );
  let prefix = m[2] ?? '';
  if (prefix && !prefix.endsWith('/')) prefix += '/';
  return { bucket: m[1], prefix };
}

/** Settings from the options, else the standard AWS environment variables. */
export function s3ClientConfig(
  options: S3Options = {},
  env: NodeJS.ProcessEnv = process.env,
): S3ClientConfig {
  const endpoint = options.endpoint ?? env.AWS_ENDPOINT_URL_S3 ?? env.AWS_ENDPOINT_URL;
  const credentials =
    options.credentials ??
    (env.AWS_ACCESS_KEY_ID && env.AWS_SECRET_ACCESS_KEY
      ? {
          accessKeyId: env.AWS_ACCESS_KEY_ID,
          secretAccessKey: env.AWS_SECRET_ACCESS_KEY,
          ...(env.AWS_SESSION_TOKEN ? { sessionToken: env.AWS_SESSION_TOKEN } : {}),
        }
      : undefined);
  return {
    region: options.region ?? env.AWS_REGION ?? env.AWS_DEFAULT_REGION ?? 'us-east-1',
    ...(endpoint ? { endpoint } : {}),
    forcePathStyle: options.forcePathStyle ?? endpoint !== undefined,
    ...(credentials ? { credentials } : {}),
    // Newer SDKs add CRC checksums to every request by default; third-party stores may reject
    // them. We send our own SHA-256 where it matters.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    maxAttempts: options.maxAttempts ?? 3,
    requestHandler: { connectionTimeout: 5000, requestTimeout: options.requestTimeoutMs ?? 60_000 },
  };
}

export function describeS3Error(err: unknown, what: string): StoreError {
  if (err instanceof StoreError) return err;
  const e = err as {
    name?: string;
    code?: string;
    message?: string;
    $metadata?: { httpStatusCode?: number };
  };
  const name = e.name ?? '';
  const msg = e.message ?? String(err);
  if (name === 'CredentialsProviderError' || /Could not load credentials/i.test(msg)) {
    return new StoreError(
      'no-credentials',
      `no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) for ${what}`,
      { cause: err },
    );
  }
  if (
    name === 'InvalidAccessKeyId' ||
    name === 'SignatureDoesNotMatch' ||
    name === 'InvalidToken' ||
    name === 'ExpiredToken'
  ) {
    return new StoreError('bad-credentials', `S3 rejected the credentials (${name}) for ${what}`, {
      cause: err,
    });
  }
  if (name === 'NoSuchBucket')
    return new StoreError('no-bucket', `bucket does not exist: ${what}`, { cause: err });
  if (name === 'AccessDenied' || e.$metadata?.httpStatusCode === 403) {
    return new StoreError('denied', `access denied: ${what} (${msg})`, { cause: err });
  }
  const code = e.code ?? '';
  if (
    ['ECONNREFUSED', 'ECONNRESET', 'ENOTFOUND', 'ETIMEDOUT', 'EPIPE', 'EAI_AGAIN', 'EHOSTUNREACH'].includes(
      code,
    ) ||
    name === 'TimeoutError' ||
    name === 'RequestTimeout' ||
    (e.$metadata?.httpStatusCode ?? 0) >= 500
  ) {
    return new StoreError('unreachable', `S3 store unreachable for ${what}: ${code || name} ${msg}`.trim(), {
      cause: err,
    });
  }
  return new StoreError('other', `S3 error for ${what}: ${name ? `${name}: ` : ''}${msg}`, { cause: err });
}

export class S3Store implements SegmentStore {
  readonly url: string;
  readonly bucket: string;
  readonly prefix: string;
  readonly client: S3Client;

  constructor(url: string, options: S3Options = {}) {
    this.url = url;
    const { bucket, prefix } = parseS3Url(url);
    this.bucket = bucket;
    this.prefix = prefix;
    this.client = new S3Client(s3ClientConfig(options));
  }

  private where(key: string): string {
    return `s3://${this.bucket}/${this.prefix}${key}`;
  }

  async put(key: string, body: Uint8Array, options: PutOptions): Promise<void> {
    try {
      await this.client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: this.prefix + key,
          Body: body,
          ContentLength: body.byteLength,
          ContentType: options.contentType,
          ChecksumSHA256: options.sha256.toString('base64'),
          ...(options.ifAbsent ? { IfNoneMatch: '*' } : {}),
          ...(options.retention
            ? { ObjectLockMode: options.retention.mode, ObjectLockRetainUntilDate: options.retention.until }
            : {}),
        }),
      );
    } catch (err) {
      const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
      if (options.ifAbsent && (status === 412 || (err as Error).name === 'PreconditionFailed')) {
        // Already there: fine when it is the same bytes (an earlier attempt whose reply we lost).
        const existing = await this.get(key);
        if (existing && createHash('sha256').update(existing).digest().equals(options.sha256)) return;
        throw new StoreError(
          'conflict',
          `${this.where(key)} already exists with different content; refusing to replace it`,
        );
      }
      throw describeS3Error(err, `writing ${this.where(key)}`);
    }
  }

  async get(key: string): Promise<Buffer | undefined> {
    try {
      const out = await this.client.send(
        new GetObjectCommand({ Bucket: this.bucket, Key: this.prefix + key }),
      );
      if (!out.Body) return Buffer.alloc(0);
      return Buffer.from(await out.Body.transformToByteArray());
    } catch (err) {
      if ((err as Error).name === 'NoSuchKey') return undefined;
      throw describeS3Error(err, `reading ${this.where(key)}`);
    }
  }

  async *list(prefix: string): AsyncIterable<string> {
    for await (const page of this.pages(prefix)) {
      for (const o of page.Contents ?? []) if (o.Key) yield o.Key.slice(this.prefix.length);
    }
  }

  async *listFolders(prefix: string): AsyncIterable<string> {
    for await (const page of this.pages(prefix, '/')) {
      for (const p of page.CommonPrefixes ?? []) if (p.Prefix) yield p.Prefix.slice(this.prefix.length);
    }
  }

  private async *pages(prefix: string, delimiter?: string): AsyncIterable<ListObjectsV2CommandOutput> {
    let token: string | undefined;
    do {
      let page: ListObjectsV2CommandOutput;
      try {
        page = await this.client.send(
          new ListObjectsV2Command({
            Bucket: this.bucket,
            Prefix: this.prefix + prefix,
            ...(delimiter ? { Delimiter: delimiter } : {}),
            ...(token ? { ContinuationToken: token } : {}),
          }),
        );
      } catch (err) {
        throw describeS3Error(err, `listing ${this.where(prefix)}`);
      }
      yield page;
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }
}

// Helpers for recording/ tests and benchmarks (not part of the public API).

import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import { S3Client } from '@aws-sdk/client-s3';
import type { MinioInfo } from '../../test/env/types.ts';
import type { RecordedEvent } from '../events.ts';
import { partitionDate } from '../layout.ts';
import { readSession } from '../reader.ts';
import type { S3Options } from '../stores/s3-store.ts';
import type { SegmentStore } from '../stores/store.ts';

export async function tempDir(name: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `chaperone-${name}-`));
  after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

export { sampleHeader } from './sample-header.ts';

export function s3OptionsFor(info: MinioInfo): S3Options {
  return {
    endpoint: info.endpoint,
    region: info.region,
    forcePathStyle: true,
    credentials: { accessKeyId: info.accessKeyId, secretAccessKey: info.secretAccessKey },
  };
}

/** The AWS_* variables with which a process (the CLI, plain S3 tools) reaches this MinIO. */
export function awsEnvFor(info: MinioInfo): NodeJS.ProcessEnv {
  return {
    AWS_ENDPOINT_URL: info.endpoint,
    AWS_REGION: info.region,
    AWS_ACCESS_KEY_ID: info.accessKeyId,
    AWS_SECRET_ACCESS_KEY: info.secretAccessKey,
  };
}

/** A fresh prefix in the MinIO bucket, so test files sharing one MinIO do not see each other. */
export function s3UrlFor(info: MinioInfo, name: string): string {
  return `s3://${info.bucket}/${name}-${randomBytes(4).toString('hex')}`;
}

/** A plain S3 client, as an auditor or attacker would use it. */
export function rawS3(info: MinioInfo): S3Client {
  const client = new S3Client({
    endpoint: info.endpoint,
    region: info.region,
    forcePathStyle: true,
    credentials: { accessKeyId: info.accessKeyId, secretAccessKey: info.secretAccessKey },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  after(() => client.destroy());
  return client;
}

/** A SQL-ish event pair, as the PostgreSQL gateway would append per statement. */
export function sqlEvents(
  i: number,
): [
  { kind: string; direction: 'client'; payload: Record<string, unknown>; summary: string },
  { kind: string; direction: 'server'; payload: Record<string, unknown> },
] {
  const sql = `SELECT id, customer, total FROM orders WHERE customer_id = $1 AND created_at > now() - interval '7 days' /* ${i % 10} */`;
  return [
    {
      kind: 'pg.query',
      direction: 'client',
      payload: { sql, params: [String(1000 + (i % 977))] },
      summary: sql,
    },
    {
      kind: 'pg.result',
      direction: 'server',
      payload: {
        command: 'SELECT',
        rows: i % 5,
        sample: Array.from({ length: i % 5 }, (_, r) => [
          1000 + r,
          `customer-${(i * 7 + r) % 131}`,
          ((i * 13 + r) % 10000) / 100,
        ]),
        durationUs: 150 + (i % 400),
      },
    },
  ];
}

/** Every event of a session, read back (and verified) from the store. */
export async function collectEvents(store: SegmentStore, sessionId: string): Promise<RecordedEvent[]> {
  const out: RecordedEvent[] = [];
  for await (const e of readSession(store, sessionId)) out.push(e);
  return out;
}

/**
 * The UTC date partition of a recorded session, from its own header: a key built from today's date
 * instead would point elsewhere for a session recorded just before midnight.
 */
export async function recordedDate(store: SegmentStore, sessionId: string): Promise<string> {
  for await (const e of readSession(store, sessionId)) {
    if (e.kind === 'session.start') return partitionDate((e.payload as { startedAtMs: number }).startedAtMs);
  }
  throw new Error(`session ${sessionId} has no session.start event`);
}

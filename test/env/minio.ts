// MinIO, single drive, on 127.0.0.1; a bucket with Object Lock (so versioning) is created at start.
import { randomBytes } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { requireBinary } from './binaries.ts';
import { freePorts, httpOk, LOOPBACK, type OwnedProcess, spawnOwned, waitUntil } from './net.ts';
import type { RunningPart } from './part.ts';
import type { MinioInfo } from './types.ts';

export const MINIO_BUCKET = 'chaperone-test';

/**
 * An S3 client for the test MinIO: path-style addressing, its region and root credentials. The
 * SDK's default flexible checksums (CRC32, also on Object Lock puts) are accepted by this MinIO,
 * so no WHEN_REQUIRED override is needed (minio.test.ts checks it).
 */
export function s3ClientFor(info: MinioInfo): S3Client {
  return new S3Client({
    endpoint: info.endpoint,
    region: info.region,
    forcePathStyle: true,
    credentials: { accessKeyId: info.accessKeyId, secretAccessKey: info.secretAccessKey },
  });
}

/** A MinIO that can be stopped and started again on the same port and data (outage tests). */
export interface MinioServer {
  info: MinioInfo;
  readonly running: boolean;
  /** Starts it (again) and waits until it is ready. */
  start(): Promise<void>;
  /** Stops it; the data and the port stay reserved for start(). */
  stop(): Promise<void>;
}

/** Starts MinIO with its drive under `dir`, without creating any bucket. */
export async function startMinioServer(dir: string): Promise<MinioServer> {
  const binary = requireBinary('minio');
  const dataDir = join(dir, 'data');
  await mkdir(dataDir, { recursive: true });
  const [port, consolePort] = (await freePorts(2)) as [number, number];
  const info: MinioInfo = {
    endpoint: `http://${LOOPBACK}:${port}`,
    region: 'us-east-1',
    accessKeyId: `chaperone${randomBytes(4).toString('hex')}`,
    secretAccessKey: randomBytes(24).toString('base64url'),
    bucket: MINIO_BUCKET,
  };
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: dir,
    MINIO_ROOT_USER: info.accessKeyId,
    MINIO_ROOT_PASSWORD: info.secretAccessKey,
    MINIO_REGION: info.region,
    MINIO_BROWSER: 'off',
    MINIO_UPDATE: 'off',
    MINIO_CALLHOME_ENABLE: 'off',
  };
  const args = [
    'server',
    dataDir,
    '--address',
    `${LOOPBACK}:${port}`,
    '--console-address',
    `${LOOPBACK}:${consolePort}`,
    '--certs-dir',
    join(dir, 'certs'),
    '--quiet',
  ];
  let proc: OwnedProcess | undefined;
  const server: MinioServer = {
    info,
    get running() {
      return proc?.running ?? false;
    },
    async start() {
      if (proc?.running) return;
      proc = spawnOwned(binary, args, { name: 'minio', logFile: join(dir, 'minio.log'), env });
      await waitUntil('minio', () => httpOk(`${info.endpoint}/minio/health/ready`), { process: proc });
    },
    async stop() {
      await proc?.stop();
    },
  };
  await server.start();
  return server;
}

/** Starts MinIO under `dir` with the Object Lock bucket of MinioInfo. */
export async function startMinio(dir: string): Promise<RunningPart<MinioInfo> & { server: MinioServer }> {
  const server = await startMinioServer(dir);
  try {
    const s3 = s3ClientFor(server.info);
    await s3.send(new CreateBucketCommand({ Bucket: server.info.bucket, ObjectLockEnabledForBucket: true }));
    s3.destroy();
  } catch (err) {
    await server.stop();
    throw err;
  }
  return { info: server.info, server, stop: () => server.stop() };
}

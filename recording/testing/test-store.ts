// A store for one test to record into and read back: a temporary spool, a fresh store (a prefix of
// the MinIO bucket, or a file:// directory) and a signing key; recorded SQL sessions; the objects of
// a session as plain S3 tools see them (to read, tamper with or lock).
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DeleteObjectCommand, GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import type { MinioInfo } from '../../test/env/types.ts';
import {
  type EventInput,
  generateSigningKey,
  openRecorder,
  openStore,
  type Recorder,
  type RecorderOptions,
  type S3Options,
  type SegmentStore,
  type SessionHeaderInput,
} from '../index.ts';
import { rawS3, recordedDate, s3OptionsFor, s3UrlFor, sqlEvents, tempDir } from './fixtures.ts';
import { sampleHeader } from './sample-header.ts';

/** An Ed25519 key pair in PEM, as `generateSigningKey()` or `chaperone keygen` make it. */
export interface TestKey {
  privateKeyPem: string;
  publicKeyPem: string;
}

export interface TestStore {
  /** This store's directory: its spool, and a file store (see `TestStoreOptions.dir`). */
  dir: string;
  /** The spool of `recorder()` unless the options name another. */
  spoolDir: string;
  url: string;
  /** MinIO's settings; undefined for a file:// store. */
  s3: S3Options | undefined;
  /** The key `recorder()` signs with. */
  key: TestKey;
  /** The store as a reader (the CLI, an auditor) opens it. */
  open(): SegmentStore;
  /** Writes `key`'s public half to `<dir>/signing.pub` (for --public-key); its path. */
  publicKeyFile(): Promise<string>;
  /** A recorder writing into this store, signed with `key`; `options` override any of that. */
  recorder(options?: Partial<RecorderOptions>): Promise<Recorder>;
}

export interface MinioTestStore extends TestStore {
  s3: S3Options;
  /** The store's prefix in the bucket (no trailing '/'). */
  prefix: string;
  /**
   * Bucket keys of a recorded session's folder (ends with '/') and index object. Written out here,
   * not taken from layout.ts, so the tests that read objects as plain S3 tools do also notice a
   * change of the documented layout; the date is the session's own (see `recordedDate`).
   */
  locate(sessionId: string, namespace: string): Promise<{ folder: string; index: string }>;
}

function testStore(dir: string, url: string, s3: S3Options | undefined, key: TestKey): TestStore {
  const spoolDir = join(dir, 'spool');
  return {
    dir,
    spoolDir,
    url,
    s3,
    key,
    open: () => openStore(url, s3),
    publicKeyFile: async () => {
      const file = join(dir, 'signing.pub');
      await writeFile(file, key.publicKeyPem);
      return file;
    },
    recorder: (options = {}) =>
      openRecorder({
        spoolDir,
        store: url,
        ...(s3 ? { s3 } : {}),
        signingKey: key.privateKeyPem,
        ...options,
      }),
  };
}

export interface FileTestStore extends TestStore {
  /** The store's directory. */
  root: string;
}

export interface TestStoreOptions {
  /** Default: a new key pair. */
  key?: TestKey;
  /**
   * Where the spool (and a file store) go. Default: a new temporary directory, removed after the
   * test that asked for it (or the file, when asked at its top level). One asked for in a suite's
   * `before` hook is gone before the suite's tests run: give that a directory from a top-level
   * `tempDir()`.
   */
  dir?: string;
}

/** A store in `<dir>/store` (file://). */
export async function fileTestStore(name: string, options: TestStoreOptions = {}): Promise<FileTestStore> {
  const dir = options.dir ?? (await tempDir(name));
  const root = join(dir, 'store');
  return { ...testStore(dir, `file://${root}`, undefined, options.key ?? generateSigningKey()), root };
}

/** A store under a fresh prefix of the MinIO bucket, so test files sharing one MinIO do not meet. */
export async function minioTestStore(
  info: MinioInfo,
  name: string,
  options: TestStoreOptions = {},
): Promise<MinioTestStore> {
  const url = s3UrlFor(info, name);
  const s3 = s3OptionsFor(info);
  const dir = options.dir ?? (await tempDir(name));
  const store = testStore(dir, url, s3, options.key ?? generateSigningKey());
  const prefix = url.slice(`s3://${info.bucket}/`.length);
  return {
    ...store,
    s3,
    prefix,
    locate: async (sessionId, namespace) => {
      const date = await recordedDate(store.open(), sessionId);
      return {
        folder: `${prefix}/sessions/date=${date}/namespace=${namespace}/session=${sessionId}/`,
        index: `${prefix}/index/date=${date}/namespace=${namespace}/${sessionId}.json`,
      };
    },
  };
}

/** Appends statements 0..count-1 (`sqlEvents` pairs), one event after the other. */
export async function appendStatements(
  session: { append(e: EventInput): Promise<unknown> },
  count: number,
): Promise<void> {
  for (let i = 0; i < count; i++) for (const e of sqlEvents(i)) await session.append(e);
}

/** A session of `count` statements, ended ('done'); its id. The recorder stays open. */
export async function recordStatements(
  rec: Recorder,
  count: number,
  header: Partial<SessionHeaderInput> = {},
): Promise<string> {
  const session = await rec.startSession(sampleHeader(header));
  await appendStatements(session, count);
  await session.end({ reason: 'done' });
  return session.sessionId;
}

/** The MinIO bucket as an auditor or attacker sees it: a plain S3 client and whole-object calls. */
export interface RawBucket {
  client: S3Client;
  name: string;
  get(key: string, versionId?: string): Promise<Buffer>;
  put(key: string, body: Buffer): Promise<void>;
  del(key: string): Promise<void>;
}

export function rawBucket(info: MinioInfo): RawBucket {
  const client = rawS3(info);
  const Bucket = info.bucket;
  return {
    client,
    name: Bucket,
    get: async (Key, VersionId) => {
      const out = await client.send(new GetObjectCommand({ Bucket, Key, VersionId }));
      return Buffer.from(await out.Body!.transformToByteArray());
    },
    put: async (Key, Body) => {
      await client.send(new PutObjectCommand({ Bucket, Key, Body }));
    },
    del: async (Key) => {
      await client.send(new DeleteObjectCommand({ Bucket, Key }));
    },
  };
}

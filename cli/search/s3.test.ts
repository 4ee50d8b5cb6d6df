// Search, index build and evidence against a real S3 (MinIO), through the CLI as an auditor runs
// it: credentials and endpoint from the standard AWS environment variables.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { generateSigningKey, openRecorder, openStore } from '../../recording/index.ts';
import {
  s3OptionsFor,
  s3UrlFor,
  sampleHeader,
  sqlEvents,
  tempDir,
} from '../../recording/testing/fixtures.ts';
import { testEnv } from '../../test/env/index.ts';
import { run } from '../program.ts';
import { generateSessions } from './testing/generate.ts';

const env = await testEnv(['minio']);
const exec = promisify(execFile);

process.env.AWS_ENDPOINT_URL = env.minio.endpoint;
process.env.AWS_REGION = env.minio.region;
process.env.AWS_ACCESS_KEY_ID = env.minio.accessKeyId;
process.env.AWS_SECRET_ACCESS_KEY = env.minio.secretAccessKey;

async function cli(args: string[]): Promise<string> {
  let out = '';
  let err = '';
  const code = await run(args, {
    out: (t) => {
      out += t;
    },
    err: (t) => {
      err += t;
    },
  });
  assert.equal(code, 0, err);
  return out;
}

test('index build and sessions search over MinIO', async () => {
  const url = s3UrlFor(env.minio, 'search');
  const all = await generateSessions(
    openStore(url, s3OptionsFor(env.minio)),
    { count: 80, startMs: Date.UTC(2026, 10, 1), days: 3, openEvery: 7 },
    generateSigningKey().privateKeyPem,
  );
  const want = all
    .filter((s) => s.namespace === 'payments' && (s.countsByKind['policy.blocked'] ?? 0) > 0)
    .map((s) => s.sessionId)
    .sort();
  assert.ok(want.length > 0);
  const search = ['--store', url, 'sessions', 'search', '--namespace', 'payments', '--blocked', '--json'];
  const ids = (out: string) =>
    out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l).session_id as string)
      .sort();
  assert.deepEqual(ids(await cli(search)), want);
  const report = JSON.parse(await cli(['--store', url, 'index', 'build', '--json']));
  assert.equal(report.sessions, 80);
  assert.equal(report.partitionsWritten, 15);
  assert.deepEqual(ids(await cli(search)), want);
  assert.equal(JSON.parse(await cli(['--store', url, 'index', 'build', '--json'])).partitionsWritten, 0);
});

test('an evidence bundle from MinIO verifies with the standard tools', async () => {
  const dir = await tempDir('evidence-s3');
  const url = s3UrlFor(env.minio, 'evidence');
  const key = generateSigningKey();
  const pub = join(dir, 'k.pub');
  await writeFile(pub, key.publicKeyPem);
  const rec = await openRecorder({
    spoolDir: join(dir, 'spool'),
    store: openStore(url, s3OptionsFor(env.minio)),
    signingKey: key.privateKeyPem,
    seal: { maxBytes: 4096 },
  });
  const s = await rec.startSession(sampleHeader());
  for (let i = 0; i < 10; i++) for (const e of sqlEvents(i)) await s.append(e);
  await s.end({ reason: 'client closed' });
  await rec.close();
  const zip = join(dir, 'b.zip');
  await cli(['--store', url, 'evidence', s.sessionId, '-o', zip, '--public-key', pub]);
  const out = join(dir, 'b');
  await exec('unzip', ['-q', zip, '-d', out]);
  const { stdout } = await exec('sh', ['verify.sh'], { cwd: out });
  assert.match(stdout, /bundle verified: 1 sessions/);
  const bundle = JSON.parse(await readFile(join(out, 'bundle.json'), 'utf8'));
  assert.equal(bundle.store, url);
  assert.ok(bundle.sessions[0].files.length >= 3);
});

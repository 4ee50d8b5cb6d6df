// Search, index build and evidence against a real S3 (MinIO), through the CLI as an auditor runs
// it: credentials and endpoint from the standard AWS environment variables.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { generateSigningKey, openStore } from '../../recording/index.ts';
import { awsEnvFor, s3OptionsFor, s3UrlFor, sampleHeader } from '../../recording/testing/fixtures.ts';
import { appendStatements, minioTestStore } from '../../recording/testing/test-store.ts';
import { testEnv } from '../../test/env/index.ts';
import { runCaptured } from '../testing/run.ts';
import { generateSessions } from './testing/generate.ts';

const env = await testEnv(['minio']);
const exec = promisify(execFile);

Object.assign(process.env, awsEnvFor(env.minio));

async function cli(args: string[]): Promise<string> {
  const { code, out, err } = await runCaptured(args);
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
  const fixture = await minioTestStore(env.minio, 'evidence');
  const { dir, url } = fixture;
  const pub = await fixture.publicKeyFile();
  const rec = await fixture.recorder({ store: fixture.open(), seal: { maxBytes: 4096 } });
  const s = await rec.startSession(sampleHeader());
  await appendStatements(s, 10);
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

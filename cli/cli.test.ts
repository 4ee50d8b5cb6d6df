// The real CLI as a child process, against MinIO and a file:// store.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { type RecordedEvent, readSession } from '../recording/index.ts';
import { awsEnvFor, sampleHeader, tempDir } from '../recording/testing/fixtures.ts';
import {
  appendStatements,
  type FileTestStore,
  fileTestStore,
  type MinioTestStore,
  minioTestStore,
  rawBucket,
  recordStatements,
  type TestKey,
} from '../recording/testing/test-store.ts';
import { testEnv } from '../test/env/index.ts';

const main = new URL('./main.ts', import.meta.url).pathname;
const env = await testEnv(['minio']);
const dir = await tempDir('cli');

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

function cli(args: string[], extraEnv: NodeJS.ProcessEnv = {}, cwd?: string): Promise<Result> {
  // A clean environment: no AWS settings leak in from the machine running the tests.
  const base: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    AWS_EC2_METADATA_DISABLED: 'true',
  };
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [main, ...args],
      { env: { ...base, ...extraEnv }, cwd, maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) => {
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
      },
    );
  });
}

function assertOneLineError(r: Result, code: number, pattern: RegExp): void {
  assert.equal(r.code, code, `exit code (stderr: ${r.stderr})`);
  const lines = r.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, `one line: ${r.stderr}`);
  assert.match(lines[0]!, /^chaperone: /);
  assert.match(lines[0]!, pattern);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
}

describe('chaperone CLI', () => {
  let keyBase: string;
  let otherKeyBase: string;
  let key: TestKey;
  let s3Store: MinioTestStore;
  let s3Url: string;
  let fileStore: FileTestStore;
  let fileUrl: string;
  let awsEnv: NodeJS.ProcessEnv;
  const ids: string[] = [];
  let fileId = '';

  before(async () => {
    keyBase = join(dir, 'signing');
    otherKeyBase = join(dir, 'other');
    const made = await cli(['keygen', '--out', keyBase]);
    assert.equal(made.code, 0, made.stderr);
    assert.equal((await cli(['keygen', '--out', otherKeyBase])).code, 0);
    key = {
      privateKeyPem: await readFile(`${keyBase}.key`, 'utf8'),
      publicKeyPem: await readFile(`${keyBase}.pub`, 'utf8'),
    };
    s3Store = await minioTestStore(env.minio, 'cli', { key, dir: join(dir, 's3') });
    s3Url = s3Store.url;
    fileStore = await fileTestStore('cli-file', { key, dir: join(dir, 'file') });
    fileUrl = fileStore.url;
    awsEnv = awsEnvFor(env.minio);
    const rec = await s3Store.recorder({ seal: { maxBytes: 4096 } });
    const pods = [
      { pod: 'etl-1', subject: 'alice', target: 'orders-db', namespace: 'team-a' },
      { pod: 'etl-2', subject: 'bob', target: 'billing-db', namespace: 'team-b' },
    ];
    for (const p of pods) {
      const s = await rec.startSession(
        sampleHeader({
          target: { name: p.target, host: 'db', port: 5432 },
          identity: { pod: p.pod, subject: p.subject, namespace: p.namespace },
        }),
      );
      await appendStatements(s, 30);
      await s.append({
        kind: 'policy.blocked',
        direction: 'internal',
        payload: { rule: 'no-ddl', reason: 'DDL is not allowed' },
      });
      await s.end({ reason: 'client closed' });
      ids.push(s.sessionId);
    }
    await rec.close({ deadlineMs: 60_000 });
    const frec = await fileStore.recorder();
    const fs = await frec.startSession(sampleHeader());
    await fs.append({ kind: 'ssh.stdin', direction: 'client', payload: { data: 'ls -la\n' } });
    await fs.end({ reason: 'exit 0' });
    await frec.close();
    fileId = fs.sessionId;
  });

  test('keygen writes a 0600 private key and refuses to overwrite', async () => {
    assert.equal((await stat(`${keyBase}.key`)).mode & 0o777, 0o600);
    assert.match(await readFile(`${keyBase}.pub`, 'utf8'), /BEGIN PUBLIC KEY/);
    assertOneLineError(await cli(['keygen', '--out', keyBase]), 1, /already exists \(use --force/);
  });

  test('sessions ls: table, JSON Lines and filters (S3 store from CHAPERONE_STORE + AWS env)', async () => {
    const e = { ...awsEnv, CHAPERONE_STORE: s3Url };
    const table = await cli(['sessions', 'ls'], e);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /^SESSION\s+STARTED\s+NAMESPACE\s+POD\s+SUBJECT\s+TARGET\s+STATUS\s+EVENTS/);
    for (const id of ids) assert.ok(table.stdout.includes(id));
    const json = await cli(['sessions', 'ls', '--json'], e);
    const rows = json.stdout
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l));
    assert.deepEqual(rows.map((r) => r.sessionId).sort(), [...ids].sort());
    const only = async (...flags: string[]) =>
      (await cli(['sessions', 'ls', '--json', ...flags], e)).stdout
        .trimEnd()
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l).sessionId);
    assert.deepEqual(await only('--namespace', 'team-a'), [ids[0]]);
    assert.deepEqual(await only('--pod', 'etl-2'), [ids[1]]);
    assert.deepEqual(await only('--subject', 'alice'), [ids[0]]);
    assert.deepEqual(await only('--target', 'billing-*'), [ids[1]]);
    assert.deepEqual((await only('--since', '1h')).sort(), [...ids].sort());
    assert.deepEqual(await only('--until', '1h'), []);
    const none = await cli(['sessions', 'ls', '--namespace', 'nobody'], e);
    assert.equal(none.stdout, 'no sessions\n');
  });

  test('sessions show and cat', async () => {
    const e = { ...awsEnv, CHAPERONE_STORE: s3Url };
    const show = await cli(['sessions', 'show', ids[0]!], e);
    assert.equal(show.code, 0, show.stderr);
    assert.match(show.stdout, /Status\s+ended \(client closed\)/);
    assert.match(show.stdout, /Subject\s+alice/);
    assert.match(show.stdout, /Pod\s+team-a\/etl-1/);
    assert.match(show.stdout, /Policy\s+agents\/db-agents \(generation 3\)/);
    assert.match(show.stdout, /policy\.blocked 1/);
    assert.match(show.stdout, /- SELECT id, customer/);
    const cat = await cli(['sessions', 'cat', ids[0]!, '--json', '--public-key', `${keyBase}.pub`], e);
    assert.equal(cat.code, 0, cat.stderr);
    const got = cat.stdout
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as RecordedEvent);
    const expected: RecordedEvent[] = [];
    for await (const ev of readSession(s3Store.open(), ids[0]!)) expected.push(ev);
    assert.deepEqual(got, expected);
    assert.equal(got.length, 63);
    const human = await cli(['--store', fileUrl, 'sessions', 'cat', fileId]);
    assert.match(human.stdout, /^\s+1\s+\S+Z\s+client\s+ssh\.stdin\s+\{"data":"ls -la\\n"\}$/m);
  });

  test('verify: OK with the right key, FAIL with the wrong one, --all, tampering', async () => {
    const e = { ...awsEnv, CHAPERONE_STORE: s3Url };
    const ok = await cli(['verify', ids[0]!, '--public-key', `${keyBase}.pub`], e);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, new RegExp(`^OK\\s+${ids[0]}\\s+\\d+ segments, 63 events\\n$`));
    const wrong = await cli(['verify', ids[0]!, '--public-key', `${otherKeyBase}.pub`], e);
    assert.equal(wrong.code, 3);
    assert.match(
      wrong.stdout,
      /^FAIL\s+\S+\s+wrong-key: segment 1: manifest signed with key \w+ .*not among the trusted public keys/,
    );
    const all = await cli(['verify', '--all', '--public-key', `${keyBase}.pub`], e);
    assert.equal(all.code, 0, all.stdout + all.stderr);
    assert.match(all.stdout, /2 of 2 sessions verified/);

    // Tamper with a segment of the second session: --all now fails and names it.
    const bucket = rawBucket(env.minio);
    const Key = `${(await s3Store.locate(ids[1]!, 'team-b')).folder}seg-000002.zst`;
    const body = await bucket.get(Key);
    body[10]! ^= 0xff;
    await bucket.put(Key, body);
    const bad = await cli(['verify', '--all', '--json', '--public-key', `${keyBase}.pub`], e);
    assert.equal(bad.code, 3);
    const reports = bad.stdout
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l));
    const failed = reports.find((r) => r.sessionId === ids[1]);
    assert.equal(failed.ok, false);
    assert.equal(failed.failure.reason, 'segment-tampered');
    assert.equal(failed.failure.segment, 2);
    assert.equal(reports.find((r) => r.sessionId === ids[0]).ok, true);
  });

  test('clear one-line errors: missing credentials, missing bucket, bad credentials, unknown session, no store, bad key file', async () => {
    assertOneLineError(
      await cli(['sessions', 'ls', '--store', s3Url], { AWS_ENDPOINT_URL: env.minio.endpoint, HOME: dir }),
      1,
      /no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY/,
    );
    assertOneLineError(
      await cli(['sessions', 'ls', '--store', 's3://no-such-bucket/x'], awsEnv),
      1,
      /bucket does not exist/,
    );
    assertOneLineError(
      await cli(['sessions', 'ls', '--store', s3Url], { ...awsEnv, AWS_SECRET_ACCESS_KEY: 'wrong-secret' }),
      1,
      /S3 rejected the credentials \(SignatureDoesNotMatch\)/,
    );
    assertOneLineError(
      await cli(['sessions', 'show', 'no-such-session', '--store', s3Url], awsEnv),
      1,
      /session no-such-session not found/,
    );
    assertOneLineError(
      await cli(['sessions', 'cat', 'no-such-session', '--store', fileUrl]),
      1,
      /session no-such-session not found/,
    );
    const unknown = await cli([
      'verify',
      'no-such-session',
      '--store',
      fileUrl,
      '--public-key',
      `${keyBase}.pub`,
    ]);
    assert.equal(unknown.code, 3);
    assert.match(unknown.stdout, /FAIL\s+no-such-session\s+session no-such-session not found/);
    assertOneLineError(await cli(['sessions', 'ls']), 1, /no store given: pass --store/);
    assertOneLineError(
      await cli(['sessions', 'ls', '--store', join(dir, 'nope')]),
      1,
      /store directory .*nope does not exist/,
    );
    assertOneLineError(
      await cli(['verify', fileId, '--store', fileUrl, '--public-key', join(dir, 'missing.pub')]),
      1,
      /cannot read public key file .*missing\.pub: ENOENT/,
    );
    await writeFile(join(dir, 'garbage.pub'), 'not a key\n');
    assertOneLineError(
      await cli(['verify', fileId, '--store', fileUrl, '--public-key', join(dir, 'garbage.pub')]),
      1,
      /garbage\.pub: public key is not a readable Ed25519 PEM key/,
    );
    assertOneLineError(
      await cli(['verify', '--store', fileUrl, '--public-key', `${keyBase}.pub`]),
      1,
      /needs a session id or --all/,
    );
    assertOneLineError(
      await cli(['sessions', 'ls', '--store', fileUrl, '--since', 'yesterday-ish']),
      1,
      /invalid time/,
    );
    assertOneLineError(
      await cli(['verify', fileId, '--store', fileUrl, '--public-key', `${keyBase}.key`]),
      1,
      /\.key is a private key; pass the public key/,
    );
    const usage = await cli(['sessions', 'ls', '--no-such-flag', '--store', fileUrl]);
    assert.equal(usage.code, 2, 'usage errors exit 2');
    assert.match(usage.stderr, /unknown option '--no-such-flag'/);
  });

  test('verify --require-ended fails a session whose tail (final segment and index) was cut', async () => {
    const cut = await fileTestStore('cli-cut', { key });
    const rec = await cut.recorder({ seal: { maxBytes: 2048 } });
    const sessionId = await recordStatements(rec, 40);
    await rec.close();
    // Without Object Lock whoever holds the bucket can remove the end of a session with its index.
    const files = (await readdir(cut.root, { recursive: true })).map(String);
    const segments = files.filter((f) => f.includes(sessionId) && /seg-\d+\.zst$/.test(f)).sort();
    assert.ok(segments.length > 2, `several segments (${segments.length})`);
    const last = segments.at(-1)!;
    for (const f of [last, last.replace(/\.zst$/, '.manifest.json')]) await rm(join(cut.root, f));
    for (const f of files.filter((f) => f.startsWith('index/') && f.endsWith(`${sessionId}.json`))) {
      await rm(join(cut.root, f));
    }
    const args = ['verify', sessionId, '--store', cut.url, '--public-key', `${keyBase}.pub`];
    const lenient = await cli(args);
    assert.equal(lenient.code, 0, lenient.stdout + lenient.stderr);
    assert.match(lenient.stdout, /not ended/);
    const strict = await cli([...args, '--require-ended']);
    assert.equal(strict.code, 3, strict.stdout + strict.stderr);
  });

  test('a store directory with a space in its path; a reader that closes the pipe early', async () => {
    const spaced = join(dir, 'store with space');
    await cp(fileStore.root, spaced, { recursive: true });
    const listed = await cli(['sessions', 'ls', '--store', spaced]);
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, new RegExp(fileId));
    // `| head` that has already gone: the CLI's write meets EPIPE and must end quietly, no stack trace.
    const piped = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      execFile(
        'sh',
        ['-c', `"${process.execPath}" "${main}" sessions cat ${fileId} --store "${spaced}" | true`],
        (err, _stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stderr }),
      );
    });
    assert.equal(piped.stderr, '', 'nothing on stderr');
  });
});

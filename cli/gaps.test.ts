// Gap events as auditors see them: one readable line per gap in `sessions cat` and `verify`, and a
// pointer to them in `sessions show`. The session comes from a writer killed with SIGKILL (MinIO).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { generateSigningKey, openRecorder } from '../recording/index.ts';
import { runAndKill } from '../recording/testing/crash-run.ts';
import { awsEnvFor, s3OptionsFor, s3UrlFor, tempDir } from '../recording/testing/fixtures.ts';
import { testEnv } from '../test/env/index.ts';
import { describeGap } from './format.ts';

const main = new URL('./main.ts', import.meta.url).pathname;
const env = await testEnv(['minio']);
const dir = await tempDir('cli-gaps');

describe('describeGap', () => {
  const cases: [Record<string, unknown>, string][] = [
    [
      {
        cause: 'crash',
        reason: 'the writer stopped',
        afterSeq: 41,
        events: 0,
        maxEvents: 1024,
        bytes: 0,
      },
      'GAP crash: events after seq 41 may be missing (at most 1024) - the writer stopped',
    ],
    [
      { cause: 'torn-record', reason: 'unreadable', fromSeq: 7, toSeq: 9, events: 3, bytes: 512 },
      'GAP torn-record: events 7..9 lost (3 events); 512 bytes - unreadable',
    ],
    [
      { cause: 'torn-record', reason: 'cut', fromSeq: 7, toSeq: 7, events: 1, bytes: 90 },
      'GAP torn-record: event 7 lost; 90 bytes - cut',
    ],
    [
      { cause: 'torn-record', reason: 'journal record cut at crash', afterSeq: 12, events: 1, bytes: 33 },
      'GAP torn-record: 1 event lost after seq 12; 33 bytes - journal record cut at crash',
    ],
    [
      {
        cause: 'spool-full',
        reason: 'spool full',
        fromSeq: 100,
        toSeq: 149,
        events: 50,
        bytes: 4000,
        fromWallMs: Date.UTC(2026, 0, 2, 3, 4, 5),
        toWallMs: Date.UTC(2026, 0, 2, 3, 4, 9),
      },
      'GAP spool-full: events 100..149 lost (50 events); 4000 bytes; 2026-01-02 03:04:05Z to 2026-01-02 03:04:09Z - spool full',
    ],
    [{ events: 2 }, 'GAP unknown cause: 2 events lost'],
  ];
  for (const [payload, line] of cases) {
    test(line.slice(0, 40), () => assert.equal(describeGap(payload), line));
  }
});

describe('chaperone CLI and gap events', () => {
  let url = '';
  let pub = '';
  let cliEnv: NodeJS.ProcessEnv = {};
  let id = '';

  const cli = (args: string[]) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile(process.execPath, [main, ...args], { env: cliEnv }, (err, stdout, stderr) =>
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
      );
    });

  before(async () => {
    const key = generateSigningKey();
    pub = join(dir, 'signing.pub');
    await writeFile(pub, key.publicKeyPem);
    url = s3UrlFor(env.minio, 'cli-gaps');
    const s3 = s3OptionsFor(env.minio);
    const spoolDir = join(dir, 'spool');
    const { acked } = await runAndKill(
      { spoolDir, store: url, s3, signingKey: key.privateKeyPem, sessions: 1, maxUnsettledAppends: 300 },
      400,
    );
    id = [...acked.keys()][0]!;
    const rec = await openRecorder({ spoolDir, store: url, s3, signingKey: key.privateKeyPem });
    await rec.close({ deadlineMs: 60_000 });
    cliEnv = {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      AWS_EC2_METADATA_DISABLED: 'true',
      ...awsEnvFor(env.minio),
      CHAPERONE_STORE: url,
    };
    assert.ok((await readFile(pub, 'utf8')).includes('PUBLIC KEY'));
  });

  test('sessions cat --gaps prints the crash gap as one readable line', async () => {
    const r = await cli(['sessions', 'cat', id, '--gaps', '--public-key', pub]);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trimEnd().split('\n');
    assert.equal(lines.length, 1, r.stdout);
    assert.match(
      lines[0]!,
      /^\s+\d+\s+\S+Z\s+internal\s+recording\.gap\s+GAP crash: events after seq (\d+) may be missing \(at most 300\) - the writer stopped without ending the session/,
    );
    const json = await cli(['sessions', 'cat', id, '--gaps', '--json']);
    const gap = JSON.parse(json.stdout.trimEnd());
    assert.equal(gap.payload.cause, 'crash');
    assert.equal(gap.payload.maxEvents, 300);
    const all = await cli(['sessions', 'cat', id]);
    assert.ok(all.stdout.split('\n').length > 100, 'without --gaps every event is printed');
    assert.match(all.stdout, /recording\.gap\s+GAP crash: /);
  });

  test('verify lists each gap under the OK line; sessions show points to them', async () => {
    const v = await cli(['verify', id, '--public-key', pub]);
    assert.equal(v.code, 0, v.stderr);
    const [ok, gapLine, ...rest] = v.stdout.trimEnd().split('\n');
    assert.match(
      ok!,
      new RegExp(`^OK\\s+${id}\\s+\\d+ segments, \\d+ events \\(recovered; 1 gaps, 0 events not kept\\)$`),
    );
    assert.match(gapLine!, /^\s+seq \d+: GAP crash: events after seq \d+ may be missing \(at most 300\)/);
    assert.deepEqual(rest, []);
    const json = JSON.parse((await cli(['verify', id, '--json', '--public-key', pub])).stdout);
    assert.equal(json.gapEvents.length, 1);
    assert.equal(json.gapEvents[0].payload.cause, 'crash');
    const show = await cli(['sessions', 'show', id]);
    assert.equal(show.code, 0, show.stderr);
    assert.match(
      show.stdout,
      new RegExp(`Gaps\\s+1 \\(0 events known lost; \`chaperone sessions cat ${id} --gaps\` lists them\\)`),
    );
    assert.match(show.stdout, /Status\s+recovered/);
  });
});

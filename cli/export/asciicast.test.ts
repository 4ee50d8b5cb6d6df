import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import type { RecordedEvent } from '../../recording/index.ts';
import { sampleHeader } from '../../recording/testing/fixtures.ts';
import { fileTestStore } from '../../recording/testing/test-store.ts';
import { run } from '../program.ts';
import { asciicastLines } from './asciicast.ts';

function ev(seq: number, ms: number, kind: string, payload: Record<string, unknown>): RecordedEvent {
  return {
    seq,
    wallMs: 1_700_000_000_000 + ms,
    monoNs: String(5_000_000_000n + BigInt(ms) * 1_000_000n),
    direction: 'client',
    kind,
    payload,
  };
}

async function* from(events: RecordedEvent[]): AsyncGenerator<RecordedEvent> {
  yield* events;
}

async function lines(events: RecordedEvent[], channel?: string): Promise<unknown[]> {
  const out: unknown[] = [];
  for await (const l of asciicastLines(from(events), channel ? { channel } : {})) out.push(JSON.parse(l));
  return out;
}

const b64 = (b: Buffer | string) => Buffer.from(b).toString('base64');
const snowman = Buffer.from('☃', 'utf8');

test('asciicast v2: header from the pty, output/input/resize/exit on the monotonic clock', async () => {
  const got = await lines([
    ev(1, 0, 'terminal.open', { channel: 'sftp', mode: 'subsystem', subsystem: 'sftp' }),
    ev(2, 10, 'terminal.open', {
      channel: '0',
      mode: 'shell',
      pty: { term: 'xterm-256color', cols: 120, rows: 40 },
    }),
    ev(3, 250, 'terminal.input', { channel: '0', stream: 'stdin', data: b64('ls\r') }),
    // A UTF-8 character split across two chunks comes out whole.
    ev(4, 500, 'terminal.output', { channel: '0', stream: 'stdout', data: b64(snowman.subarray(0, 1)) }),
    ev(5, 510, 'terminal.output', { channel: 'sftp', stream: 'stdout', data: b64('not this channel') }),
    ev(6, 600, 'terminal.output', { channel: '0', stream: 'stdout', data: b64(snowman.subarray(1)) }),
    ev(7, 1010, 'terminal.resize', { channel: '0', cols: 100, rows: 30 }),
    ev(8, 2010, 'terminal.exit', { channel: '0', code: 0 }),
    ev(9, 2020, 'terminal.output', { channel: '0', stream: 'stdout', data: b64('after exit') }),
  ]);
  assert.deepEqual(got, [
    {
      version: 2,
      width: 120,
      height: 40,
      timestamp: 1_700_000_000,
      env: { TERM: 'xterm-256color', SHELL: '' },
    },
    [0.24, 'i', 'ls\r'],
    [0.49, 'o', ''],
    [0.59, 'o', '☃'],
    [1, 'r', '100x30'],
    [2, 'm', 'exit 0'],
  ]);
});

test('asciicast: a named channel, and a clear error when there is none', async () => {
  const events = [
    ev(1, 0, 'terminal.open', { channel: 'a', mode: 'exec', command: 'uname -a' }),
    ev(2, 5, 'terminal.open', { channel: 'b', mode: 'exec', command: 'id' }),
    ev(3, 7, 'terminal.output', { channel: 'b', stream: 'stderr', data: b64('uid=1000\n') }),
  ];
  const got = await lines(events, 'b');
  assert.deepEqual(got[0], {
    version: 2,
    width: 80,
    height: 24,
    timestamp: 1_700_000_000,
    command: 'id',
    env: { TERM: 'xterm', SHELL: '' },
  });
  assert.deepEqual(got[1], [0.002, 'o', 'uid=1000\n']);
  await assert.rejects(lines(events, 'zz'), /no terminal channel zz in this session/);
  await assert.rejects(
    lines([ev(1, 0, 'pg.query', { sql: 'select 1' })]),
    /no terminal channel in this session/,
  );
});

test('chaperone sessions export --format asciicast writes a recorded terminal session to a file', async () => {
  const fixture = await fileTestStore('export-asciicast');
  const { dir, url: store } = fixture;
  const rec = await fixture.recorder();
  const s = await rec.startSession(sampleHeader({ protocol: 'ssh' }));
  await s.append({
    kind: 'terminal.open',
    direction: 'client',
    payload: { channel: '0', mode: 'exec', command: 'echo hi' },
  });
  await s.append({
    kind: 'terminal.output',
    direction: 'server',
    payload: { channel: '0', stream: 'stdout', data: b64('hi\n') },
  });
  await s.append({ kind: 'terminal.exit', direction: 'server', payload: { channel: '0', code: 0 } });
  await s.end({ reason: 'exit 0' });
  await rec.close();
  // The recorder refuses a payload that does not match the terminal contract.
  const rec2 = await fixture.recorder({ spoolDir: join(dir, 'spool2') });
  const s2 = await rec2.startSession(sampleHeader({ protocol: 'ssh' }));
  await assert.rejects(
    s2.append({ kind: 'terminal.output', direction: 'server', payload: { channel: '0', data: 1 } }),
  );
  await s2.end({ reason: 'done' });
  await rec2.close();

  const out = join(dir, 'session.cast');
  const io = { out: () => {}, err: (t: string) => assert.fail(t) };
  assert.equal(
    await run(['--store', store, 'sessions', 'export', s.sessionId, '--format', 'asciicast', '-o', out], io),
    0,
  );
  const cast = (await readFile(out, 'utf8'))
    .trimEnd()
    .split('\n')
    .map((l) => JSON.parse(l));
  assert.equal(cast[0].version, 2);
  assert.equal(cast[0].command, 'echo hi');
  assert.deepEqual(
    cast.slice(1).map((l: unknown[]) => l.slice(1)),
    [
      ['o', 'hi\n'],
      ['m', 'exit 0'],
    ],
  );

  let err = '';
  const code = await run(['--store', store, 'sessions', 'export', s.sessionId, '--format', 'nope'], {
    out: () => {},
    err: (t) => {
      err += t;
    },
  });
  assert.equal(code, 1);
  assert.match(err, /unknown format nope \(one of: asciicast\b/);
});

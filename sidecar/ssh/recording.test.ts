// What auditors do with an ssh recording: export a real terminal session as asciicast v2 (checked
// against the format) and replay it with `chaperone sessions play` at a speed factor or step by step.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { play } from '../../cli/commands/play.ts';
import { run } from '../../cli/program.ts';
import { readSession } from '../../recording/index.ts';
import { testEnv } from '../../test/env/index.ts';
import { openStore } from '../server/modules.ts';
import { kinds, type SshHarness, startSshHarness } from './testing/harness.ts';

const { sshd } = await testEnv(['sshd']);

async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await run(args, { out: (s) => (out += s), err: (s) => (err += s) });
  return { code, out, err };
}

describe('ssh recordings for auditors', () => {
  let h: SshHarness;
  let sessionId: string;
  const marker = randomBytes(6).toString('hex');
  before(async () => {
    h = await startSshHarness(sshd);
    // An interactive shell with a real PTY size and a window change, from ssh2's client.
    const client = await h.connect();
    await new Promise<void>((resolve, reject) => {
      client.shell({ term: 'xterm', cols: 80, rows: 24 }, (err, stream) => {
        if (err) return reject(err);
        let seen = '';
        let resized = false;
        stream.on('data', (d: Buffer) => {
          seen += d.toString();
          if (!resized && seen.includes(`first-${marker}\r\n`)) {
            resized = true;
            stream.setWindow(30, 100, 0, 0);
            stream.write(`echo second-${marker}; exit 5\n`);
          }
        });
        stream.on('close', () => resolve());
        stream.write(`echo first-${marker}\n`);
      });
    });
    client.end();
    const events = await h.waitForSession(
      (evs) =>
        kinds(evs, 'terminal.exit').length > 0 &&
        kinds(evs, 'ssh.command').some((e) => String(e.payload.command).includes(`second-${marker}`)),
    );
    sessionId = (events[0]!.payload as { sessionId?: string }).sessionId ?? '';
    if (!sessionId) {
      for (const id of await h.sessionIds()) {
        const evs = await h.events(id);
        if (kinds(evs, 'ssh.command').some((e) => String(e.payload.command).includes(`second-${marker}`)))
          sessionId = id;
      }
    }
    assert.ok(sessionId);
  });
  after(() => h.close());

  test('the recording holds the PTY size, the resize and the exit status', async () => {
    const events = await h.events(sessionId);
    const open = kinds(events, 'terminal.open')[0]!;
    assert.deepEqual(open.payload.pty, { term: 'xterm', cols: 80, rows: 24 });
    assert.deepEqual(
      kinds(events, 'terminal.resize').map((e) => [e.payload.cols, e.payload.rows]),
      [[100, 30]],
    );
    assert.deepEqual(
      kinds(events, 'terminal.exit').map((e) => e.payload.code),
      [5],
    );
  });

  test('sessions export --format asciicast writes valid asciicast v2', async () => {
    const r = await cli(['--store', h.storeUrl, 'sessions', 'export', sessionId, '--format', 'asciicast']);
    assert.equal(r.code, 0, r.err);
    const [head, ...frames] = r.out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as unknown);
    const header = head as {
      version: number;
      width: number;
      height: number;
      timestamp: number;
      env: { TERM: string };
    };
    assert.equal(header.version, 2);
    assert.equal(header.width, 80);
    assert.equal(header.height, 24);
    assert.equal(header.env.TERM, 'xterm');
    assert.ok(Number.isInteger(header.timestamp));
    let last = 0;
    for (const f of frames) {
      assert.ok(Array.isArray(f) && f.length === 3, JSON.stringify(f));
      const [t, type, data] = f as [number, string, string];
      assert.ok(typeof t === 'number' && t >= last, 'times never go back');
      last = t;
      assert.ok(['o', 'i', 'r', 'm'].includes(type));
      assert.equal(typeof data, 'string');
    }
    const out = frames
      .filter((f) => (f as string[])[1] === 'o')
      .map((f) => (f as string[])[2])
      .join('');
    assert.match(out, new RegExp(`second-${marker}`));
    assert.ok(frames.some((f) => (f as string[])[1] === 'r' && (f as string[])[2] === '100x30'));
    assert.deepEqual((frames.at(-1) as string[]).slice(1), ['m', 'exit 5']);
  });

  test('sessions play replays the screen; --speed divides the recorded pauses, --step waits per frame', async () => {
    const r = await cli(['--store', h.storeUrl, 'sessions', 'play', sessionId, '--speed', '1000']);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, new RegExp(`first-${marker}[\\s\\S]*second-${marker}[\\s\\S]*\\[exit 5\\]`));

    const store = openStore(h.storeUrl);
    const sleeps: number[] = [];
    let screen = '';
    await play(
      readSession(store, sessionId),
      (t) => (screen += t),
      { speed: 4, maxIdle: undefined, step: false },
      {
        sleep: async (ms) => {
          sleeps.push(ms);
        },
        next: () => Promise.reject(new Error('not stepping')),
      },
    );
    const plain: number[] = [];
    await play(
      readSession(store, sessionId),
      () => undefined,
      { speed: 1, maxIdle: undefined, step: false },
      {
        sleep: async (ms) => {
          plain.push(ms);
        },
        next: () => Promise.reject(new Error('not stepping')),
      },
    );
    assert.equal(sleeps.length, plain.length);
    for (let i = 0; i < plain.length; i++) assert.ok(Math.abs(sleeps[i]! * 4 - plain[i]!) < 1e-6);
    let steps = 0;
    await play(
      readSession(store, sessionId),
      () => undefined,
      { speed: 1, maxIdle: undefined, step: true },
      {
        sleep: () => Promise.reject(new Error('stepping does not sleep')),
        next: async () => {
          steps++;
        },
      },
    );
    assert.ok(steps >= 2);
    assert.match(screen, new RegExp(`second-${marker}`));
  });
});

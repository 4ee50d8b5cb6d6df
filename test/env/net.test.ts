import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { freePort, retryIfPortTaken, spawnOwned, tcpAccepts, waitUntil } from './net.ts';

const netModule = new URL('./net.ts', import.meta.url).pathname;

/** Running, not a zombie waiting for its new parent to reap it. */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

test('freePort returns a port that can be listened on', async () => {
  const port = await freePort();
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  assert.ok(await tcpAccepts('127.0.0.1', port));
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

test('retryIfPortTaken retries bind failures only', async () => {
  let calls = 0;
  const value = await retryIfPortTaken(async () => {
    calls++;
    if (calls < 3) throw new Error('minio exited: Specified port is already in use');
    return 'ok';
  });
  assert.deepEqual([value, calls], ['ok', 3]);
  calls = 0;
  await assert.rejects(
    retryIfPortTaken(async () => {
      calls++;
      throw new Error('bad config');
    }),
    /bad config/,
  );
  assert.equal(calls, 1);
});

test('waitUntil fails at once, with the log, when the process exits', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'chaperone-net-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const proc = spawnOwned('/bin/sh', ['-c', 'echo broken config >&2; exit 3'], {
    name: 'failing',
    logFile: join(dir, 'log'),
  });
  await assert.rejects(
    waitUntil('failing', async () => false, { process: proc, timeoutMs: 30_000 }),
    /failing exited \(code 3.*broken config/s,
  );
});

test('stop() ends the process, with SIGKILL when it ignores the stop signal', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'chaperone-net-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const proc = spawnOwned('/bin/sh', ['-c', "trap '' TERM; echo up; while :; do sleep 1; done"], {
    name: 'stubborn',
    logFile: join(dir, 'log'),
  });
  await waitUntil('stubborn', async () => (await readFile(join(dir, 'log'), 'utf8')).includes('up'));
  await proc.stop(300);
  assert.equal(proc.running, false);
  assert.equal(proc.child.signalCode, 'SIGKILL');
});

test('a spawned server dies when its parent is killed outright', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'chaperone-net-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  // A parent process that starts a long sleep and reports its pid once setpriv has armed the
  // parent-death signal and exec'd the sleep, then waits forever.
  const script = `
    import { readlinkSync } from 'node:fs';
    import { spawnOwned } from ${JSON.stringify(netModule)};
    const p = spawnOwned('/bin/sleep', ['300'], { name: 'sleep', logFile: ${JSON.stringify(join(dir, 'log'))} });
    const exe = () => { try { return readlinkSync('/proc/' + p.pid + '/exe'); } catch { return ''; } };
    const timer = setInterval(() => {
      if (exe().endsWith('/sleep')) { console.log(p.pid); clearInterval(timer); setInterval(() => {}, 1000); }
    }, 10);
  `;
  const parent = spawn(process.execPath, ['--input-type=module', '-e', script], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const childPid = await new Promise<number>((resolve) =>
    parent.stdout.once('data', (d: Buffer) => resolve(Number(d))),
  );
  assert.ok(alive(childPid));
  parent.kill('SIGKILL');
  await waitUntil('the orphan to die', async () => !alive(childPid), { timeoutMs: 10_000 });
});

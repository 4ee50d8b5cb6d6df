import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { freePorts, startServerProcess, waitUntilReady } from './kube-process.ts';

describe('server processes', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'chaperone-process-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('fails fast with the log tail when the server exits during start-up', async () => {
    const proc = startServerProcess(
      'failing',
      '/bin/sh',
      ['-c', 'echo "bad flag --x" >&2; exit 3'],
      join(dir, 'f.log'),
    );
    await assert.rejects(
      waitUntilReady(async () => false, { what: 'readiness', timeoutMs: 30_000, process: proc }),
      (error: Error) =>
        /failing exited with code 3 before readiness/.test(error.message) &&
        /bad flag --x/.test(error.message),
    );
  });

  it('times out with the last problem and the log tail', async () => {
    const proc = startServerProcess(
      'slow',
      '/bin/sh',
      ['-c', 'echo still starting; exec sleep 30'],
      join(dir, 's.log'),
    );
    try {
      await assert.rejects(
        waitUntilReady(
          async () => {
            throw new Error('connection refused');
          },
          { what: 'readiness', timeoutMs: 300, process: proc },
        ),
        (error: Error) =>
          /timed out after 300 ms waiting for readiness \(connection refused\)/.test(error.message) &&
          /still starting/.test(error.message),
      );
    } finally {
      assert.deepEqual(await proc.stop(), { code: null, signal: 'SIGTERM' });
    }
  });

  it('escalates to SIGKILL when SIGTERM is ignored', async () => {
    const proc = startServerProcess(
      'stubborn',
      process.execPath,
      [
        '-e',
        "process.on('SIGTERM', () => console.log('ignored')); console.log('up'); setInterval(() => {}, 1000)",
      ],
      join(dir, 'k.log'),
    );
    await waitUntilReady(async () => readFileSync(proc.logPath, 'utf8').includes('up'), {
      what: 'the process to start',
      timeoutMs: 10_000,
      process: proc,
    });
    assert.deepEqual(await proc.stop({ graceMs: 300 }), { code: null, signal: 'SIGKILL' });
  });

  it('reserves distinct free ports', async () => {
    const ports = await freePorts(5);
    assert.equal(new Set(ports).size, 5);
    for (const port of ports) assert.ok(port > 0 && port < 65536);
  });
});

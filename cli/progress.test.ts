import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { sampleHeader, sqlEvents } from '../recording/testing/fixtures.ts';
import { fileTestStore } from '../recording/testing/test-store.ts';

const exec = promisify(execFile);
const main = new URL('./main.ts', import.meta.url).pathname;

test('verify --all draws a progress bar on a terminal and never into a pipe', async () => {
  const fixture = await fileTestStore('progress');
  const pub = await fixture.publicKeyFile();
  const store = fixture.url;
  const rec = await fixture.recorder();
  for (let i = 0; i < 3; i++) {
    const s = await rec.startSession(sampleHeader());
    for (const e of sqlEvents(i)) await s.append(e);
    await s.end({ reason: 'done' });
  }
  await rec.close();
  const args = [main, '--store', store, 'verify', '--all', '--public-key', pub];

  const piped = await exec(process.execPath, args);
  assert.equal(piped.stderr, '');
  assert.match(piped.stdout, /3 of 3 sessions verified/);

  // script(1) gives the CLI a pseudo-terminal, as an auditor's shell would.
  const cmd = [process.execPath, ...args].map((a) => `'${a}'`).join(' ');
  const tty = await exec('script', ['-qec', cmd, '/dev/null']);
  assert.match(tty.stdout, /verifying \[[#\-░█ ]*\] \d\/3/);
  assert.match(tty.stdout, /3 of 3 sessions verified/);
});

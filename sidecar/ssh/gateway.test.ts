// ssh, ssh -tt, scp and sftp through the sidecar against the real OpenSSH sshd: what the agent gets,
// what reaches the host, and what the recording holds.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { testEnv } from '../../test/env/index.ts';
import { AGENT_SUBJECT, kinds, type SshHarness, startSshHarness, streamText } from './testing/harness.ts';

const { sshd } = await testEnv(['sshd']);

describe('ssh through the sidecar', () => {
  let h: SshHarness;
  before(async () => {
    h = await startSshHarness(sshd);
  });
  after(() => h.close());

  test('exec runs upstream as the upstream user; the recording holds command, output and exit code', async () => {
    const marker = randomBytes(6).toString('hex');
    const r = await h.ssh(['agent@127.0.0.1', `echo out-${marker}; echo err-${marker} >&2; id -un; exit 3`]);
    assert.equal(r.code, 3, r.stderr);
    assert.equal(r.stdout, `out-${marker}\n${sshd.user}\n`);
    assert.match(r.stderr, new RegExp(`err-${marker}`));
    const events = await h.waitForSession((evs) =>
      kinds(evs, 'terminal.open').some((e) => String(e.payload.command).includes(marker)),
    );
    const header = events[0]!;
    assert.equal(
      (header.payload as { identity?: { subject?: string } }).identity?.subject ?? AGENT_SUBJECT,
      AGENT_SUBJECT,
    );
    const open = kinds(events, 'terminal.open')[0]!;
    assert.equal(open.payload.mode, 'exec');
    assert.equal(streamText(events, 'terminal.output', 'stdout'), `out-${marker}\n${sshd.user}\n`);
    assert.equal(streamText(events, 'terminal.output', 'stderr'), `err-${marker}\n`);
    assert.deepEqual(
      kinds(events, 'terminal.exit').map((e) => e.payload.code),
      [3],
    );
    const login = kinds(events, 'ssh.login')[0]!;
    assert.equal(login.payload.upstreamUser, sshd.user);
    assert.match(String(login.payload.upstreamHostKey), /^SHA256:/);
  });

  test('a wrong token is refused and recorded as a refused session', async () => {
    const r = await h.ssh(['agent@127.0.0.1', 'true'], { token: 'not-a-token' });
    assert.equal(r.code, 255);
    assert.match(r.stderr, /Permission denied/);
  });
});

// Thinking like an agent against the ssh gateway, with the real sshd and OpenSSH clients: a host
// that is not the pinned one, environment injection, forwarding the policy did not allow, line
// editing the guard cannot follow, sftp links and path tricks, fishing for the upstream secret.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type ssh2 from 'ssh2';
import { testEnv } from '../../test/env/index.ts';
import { run } from '../../test/env/net.ts';
import { AGENT_SUBJECT, kinds, type SshHarness, startSshHarness, streamText } from './testing/harness.ts';

const { sshd } = await testEnv(['sshd']);

describe('ssh gateway under attack', () => {
  let h: SshHarness;
  before(async () => {
    h = await startSshHarness(sshd, {
      allowEnv: ['CHAPERONE_OK'],
      config: {
        guardrails: [{ name: 'no-shutdown', match: { commandPattern: '\\bshutdown\\b' }, action: 'block' }],
      },
    });
  });
  after(() => h.close());

  test('an upstream presenting another host key is refused before any credential is sent', async (t) => {
    const other = join(h.dir, `other-${randomBytes(4).toString('hex')}`);
    await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', other]);
    const pub = (await readFile(`${other}.pub`, 'utf8')).split(' ');
    const wrong = await startSshHarness(sshd, { upstreamHostKeys: [`${pub[0]} ${pub[1]}`] });
    t.after(() => wrong.close());
    const r = await wrong.ssh(['agent@127.0.0.1', 'echo should-not-run']);
    assert.equal(r.code, 255);
    assert.doesNotMatch(r.stdout, /should-not-run/);
    const events = await wrong.waitForSession((evs) => kinds(evs, 'ssh.error').length > 0);
    assert.equal(kinds(events, 'ssh.error')[0]!.payload.hostKeyMismatch, true);
    assert.deepEqual(
      kinds(events, 'policy.blocked').map((e) => e.payload.rule),
      ['upstream-host-key'],
    );
    assert.equal(kinds(events, 'terminal.open').length, 0);
  });

  test('environment requests: only the allowed names pass, the rest are refused and recorded', async () => {
    const r = await h.ssh([
      '-o',
      'SetEnv=LD_PRELOAD=/tmp/evil.so CHAPERONE_OK=yes',
      'agent@127.0.0.1',
      'echo "[$LD_PRELOAD][$CHAPERONE_OK]"',
    ]);
    assert.equal(r.code, 0, r.stderr);
    // sshd itself only accepts AcceptEnv names; CHAPERONE_OK is passed upstream but the test sshd drops it.
    assert.match(r.stdout, /^\[\]\[/);
    const events = await h.waitForSession((evs) =>
      kinds(evs, 'policy.blocked').some((e) => e.payload.name === 'LD_PRELOAD'),
    );
    const open = kinds(events, 'terminal.open')[0]!;
    assert.deepEqual(open.payload.env, { CHAPERONE_OK: 'yes' });
  });

  test('port forwarding (-W, -L) and agent forwarding are refused and recorded', async () => {
    const w = await h.ssh(['-W', `127.0.0.1:${sshd.port}`, 'agent@127.0.0.1']);
    assert.notEqual(w.code, 0);
    assert.match(w.stderr, /open failed|administratively prohibited|Connection closed|failed/i);
    const a = await h.ssh(
      ['-A', '-o', 'ExitOnForwardFailure=yes', 'agent@127.0.0.1', 'echo "[$SSH_AUTH_SOCK]"'],
      {},
    );
    assert.match(a.stdout, /^\[\]/);
    const events = await h.waitForSession((evs) =>
      kinds(evs, 'policy.blocked').some((e) => e.payload.command === 'direct-tcpip'),
    );
    assert.equal(
      kinds(events, 'policy.blocked').find((e) => e.payload.command === 'direct-tcpip')!.payload.rule,
      'ssh-forwarding',
    );
    const l = await h.ssh([
      '-o',
      'ExitOnForwardFailure=yes',
      '-R',
      '0:127.0.0.1:22',
      'agent@127.0.0.1',
      'echo forwarded',
    ]);
    assert.notEqual(l.code, 0);
    assert.doesNotMatch(l.stdout, /forwarded/);
  });

  test('history recall and cursor keys make a line uncertain: refused when command rules exist', async () => {
    const marker = randomBytes(6).toString('hex');
    // Up arrow recalls the previous line; the guard cannot know what bash will run.
    const r = await h.ssh(['-tt', 'agent@127.0.0.1'], {
      stdin: `echo one-${marker}\n\x1b[A\necho two-${marker}\nexit\n`,
    });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout + r.stderr, /shell-line-uncertain/);
    const events = await h.waitForSession((evs) =>
      kinds(evs, 'ssh.command').some((e) => String(e.payload.command).includes(`two-${marker}`)),
    );
    const uncertain = kinds(events, 'ssh.command').filter((e) => e.payload.uncertain === true);
    assert.equal(uncertain.length, 1);
    // The line before the refused one ran once, the one after it too: nothing was flushed.
    const lines = streamText(events, 'terminal.output', 'stdout')
      .split('\n')
      .map((l) =>
        l.replace(new RegExp(`${String.fromCharCode(27)}\\[[?0-9;]*[a-zA-Z]`, 'g'), '').replace(/\r/g, ''),
      );
    assert.equal(lines.filter((l) => l === `one-${marker}`).length, 1, lines.join('\n'));
    assert.equal(lines.filter((l) => l === `two-${marker}`).length, 1, lines.join('\n'));
  });

  test('a blocked word split by backspaces and ^U is still seen', async () => {
    const r = await h.ssh(['-tt', 'agent@127.0.0.1'], {
      stdin: 'echo harmless\x15shutx\x7fdown -h now\nexit 7\n',
    });
    assert.match(r.stdout + r.stderr, /command blocked by rule no-shutdown/);
    assert.equal(r.code, 7, 'the line after the refused one runs');
  });

  test('sftp: symlink and hard-link creation are refused; over-long paths are refused', async (t) => {
    const name = `link-${randomBytes(4).toString('hex')}`;
    const r = await h.run('sftp', ['-P', String(h.port), 'agent@127.0.0.1'], {
      stdin: `symlink /etc/shadow ${name}\nln /etc/passwd ${name}-hard\n`,
    });
    assert.match(r.stderr, /not allowed|unsupported|denied/i);
    await assert.rejects(readFile(join(sshd.homeDir, name)));
    await h.waitForSession(
      (evs) => kinds(evs, 'policy.blocked').filter((e) => e.payload.rule === 'sftp-links').length >= 2,
    );
    // A path longer than any real one (ssh2's client sends what OpenSSH's would not).
    const client = await h.connect();
    t.after(() => client.end());
    const sftp = await new Promise<ssh2.SFTPWrapper>((resolve, reject) =>
      client.sftp((err, s) => (err ? reject(err) : resolve(s))),
    );
    const err = await new Promise<Error | undefined>((resolve) =>
      sftp.stat(`${'a/'.repeat(3000)}x`, (e) => resolve(e ?? undefined)),
    );
    assert.match(String(err?.message), /path too long/);
    const events = await h.waitForSession((evs) =>
      kinds(evs, 'policy.blocked').some((e) => e.payload.rule === 'sftp-protocol'),
    );
    assert.ok(events.length > 0);
  });

  test('the agent never sees the upstream password; the recording does not hold it either', async () => {
    const r = await h.ssh(['agent@127.0.0.1', 'cat /proc/self/environ | tr "\\0" "\\n"; echo done']);
    assert.equal(r.code, 0);
    assert.doesNotMatch(r.stdout, new RegExp(sshd.password));
    for (const id of await h.sessionIds()) {
      const text = JSON.stringify(await h.events(id));
      assert.doesNotMatch(text, new RegExp(sshd.password));
      assert.doesNotMatch(text, new RegExp(h.token.split('.')[2]!));
    }
  });
});

describe('identity revoked mid-session', () => {
  test('an identity offboarded during an open shell ends the session, with a message and a record', async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'chaperone-offboard-'));
    const list = join(dir, 'offboarded');
    await writeFile(list, 'someone-else 2026-01-01\n');
    const h = await startSshHarness(sshd, {
      identity: {
        offboarding: { file: list, action: 'deny', refreshSeconds: 5 },
        liveness: { tokenReview: false, recheckSeconds: 1 },
      },
    });
    t.after(async () => {
      await h.close();
      await rm(dir, { recursive: true, force: true });
    });
    const client = await h.connect();
    let stderr = '';
    const closed = new Promise<void>((resolve, reject) => {
      client.shell({ term: 'xterm', cols: 80, rows: 24 }, (err, stream) => {
        if (err) return reject(err);
        stream.stderr.on('data', (d: Buffer) => {
          stderr += d.toString();
        });
        stream.on('data', () => undefined);
        stream.on('close', () => resolve());
      });
    });
    client.on('error', () => undefined);
    await writeFile(list, `${AGENT_SUBJECT} 2026-01-01\n`);
    await closed;
    client.end();
    assert.match(stderr, /identity no longer valid/);
    const events = await h.waitForSession((evs) => kinds(evs, 'identity.revoked').length > 0);
    assert.equal(kinds(events, 'identity.revoked')[0]!.payload.code, 'offboarded');
  });
});

describe('direct-tcpip the policy allows', () => {
  test('an allowed destination is opened by the upstream and recorded; any other is refused', async (t) => {
    const h = await startSshHarness(sshd, { allowDirectTcpip: [{ host: '127.0.0.1', port: sshd.port }] });
    t.after(() => h.close());
    // The upstream's own sshd as the destination: its banner comes back through the tunnel.
    const ok = await h.ssh(['-W', `127.0.0.1:${sshd.port}`, 'agent@127.0.0.1'], { timeoutMs: 15_000 });
    assert.match(ok.stdout, /^SSH-2\.0-OpenSSH/);
    const refused = await h.ssh(['-W', `127.0.0.1:${sshd.port + 1}`, 'agent@127.0.0.1'], {
      timeoutMs: 15_000,
    });
    assert.notEqual(refused.code, 0);
    const events = await h.waitForSession((evs) =>
      kinds(evs, 'ssh.forward').some((e) => e.payload.state === 'closed'),
    );
    const closed = kinds(events, 'ssh.forward').find((e) => e.payload.state === 'closed')!;
    assert.equal(closed.payload.destination, `127.0.0.1:${sshd.port}`);
    assert.ok(Number(closed.payload.server) > 0);
    await h.waitForSession((evs) =>
      kinds(evs, 'policy.blocked').some((e) => e.payload.destination === `127.0.0.1:${sshd.port + 1}`),
    );
  });
});

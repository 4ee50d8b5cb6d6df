// ssh, ssh -tt, scp and sftp through the sidecar against the real OpenSSH sshd: what the agent gets,
// what reaches the host, and what the recording holds.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import ssh2 from 'ssh2';
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

  test('ssh -tt: an interactive shell with a PTY; typed lines, screen output, exit code recorded', async () => {
    const marker = randomBytes(6).toString('hex');
    const r = await h.ssh(['-tt', 'agent@127.0.0.1'], { stdin: `echo tty-$((6*7))-${marker}\nexit 4\n` });
    assert.equal(r.code, 4, r.stderr);
    assert.match(r.stdout, new RegExp(`tty-42-${marker}`));
    const events = await h.waitForSession((evs) =>
      kinds(evs, 'ssh.command').some((e) => String(e.payload.command).includes(marker)),
    );
    const open = kinds(events, 'terminal.open')[0]!;
    assert.equal(open.payload.mode, 'shell');
    // ssh -tt without a local terminal asks for a PTY of size 0x0.
    assert.ok(open.payload.pty);
    assert.deepEqual(
      kinds(events, 'ssh.command').map((e) => e.payload.command),
      [`echo tty-$((6*7))-${marker}`, 'exit 4'],
    );
    assert.match(
      streamText(events, 'terminal.input', 'stdin'),
      new RegExp(`echo tty-\\$\\(\\(6\\*7\\)\\)-${marker}`),
    );
    assert.match(streamText(events, 'terminal.output', 'stdout'), new RegExp(`tty-42-${marker}`));
    assert.deepEqual(
      kinds(events, 'terminal.exit').map((e) => e.payload.code),
      [4],
    );
  });

  test('sftp put and get: files land, the recording holds the operations with sizes and SHA-256', async (t) => {
    const name = `sftp-${randomBytes(6).toString('hex')}.bin`;
    const local = join(h.dir, name);
    const back = join(h.dir, `${name}.back`);
    const content = randomBytes(300_000);
    await writeFile(local, content);
    t.after(() => rm(join(sshd.homeDir, name), { force: true }));
    // Commands on stdin, not -b: batch mode turns password authentication off.
    const r = await h.run('sftp', ['-P', String(h.port), 'agent@127.0.0.1'], {
      stdin: `put ${local} ${name}\nget ${name} ${back}\nrm ${name}\n`,
    });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await readFile(back), content);
    const sha = createHash('sha256').update(content).digest('hex');
    const events = await h.waitForSession((evs) =>
      kinds(evs, 'terminal.file').some(
        (e) => String(e.payload.path).endsWith(name) && e.payload.op === 'remove',
      ),
    );
    const files = kinds(events, 'terminal.file').map((e) => e.payload);
    const path = join(sshd.homeDir, name);
    assert.deepEqual(
      files.map((f) => [f.op, f.path, f.bytes, f.sha256, f.status]),
      [
        ['upload', path, content.length, sha, 'ok'],
        ['download', path, content.length, sha, 'ok'],
        ['remove', path, undefined, undefined, 'ok'],
      ],
    );
    // sftp bytes are recorded as file operations, not as raw terminal data.
    assert.equal(kinds(events, 'terminal.input').length, 0);
  });

  test('scp copies a file both ways through the sidecar, recorded as an upload and a download', async (t) => {
    const name = `scp-${randomBytes(6).toString('hex')}.bin`;
    const local = join(h.dir, name);
    const back = join(h.dir, `${name}.back`);
    const content = randomBytes(150_000);
    await writeFile(local, content);
    t.after(() => rm(join(sshd.homeDir, name), { force: true }));
    const up = await h.run('scp', ['-P', String(h.port), local, `agent@127.0.0.1:${name}`]);
    assert.equal(up.code, 0, up.stderr);
    assert.deepEqual(await readFile(join(sshd.homeDir, name)), content);
    const down = await h.run('scp', ['-P', String(h.port), `agent@127.0.0.1:${name}`, back]);
    assert.equal(down.code, 0, down.stderr);
    assert.deepEqual(await readFile(back), content);
    const sha = createHash('sha256').update(content).digest('hex');
    for (const op of ['upload', 'download']) {
      await h.waitForSession((evs) =>
        kinds(evs, 'terminal.file').some(
          (e) => String(e.payload.path).endsWith(name) && e.payload.op === op && e.payload.sha256 === sha,
        ),
      );
    }
  });

  test('keyboard-interactive: the token as the answer to the prompt logs in too', async () => {
    const client = new ssh2.Client();
    const prompts: string[] = [];
    await new Promise<void>((resolve, reject) => {
      client.once('ready', () => resolve()).once('error', reject);
      client.on('keyboard-interactive', (_name, _instructions, _lang, asked, finish) => {
        prompts.push(...asked.map((p) => p.prompt));
        finish([h.token]);
      });
      client.connect({
        host: '127.0.0.1',
        port: h.port,
        username: 'agent',
        tryKeyboard: true,
        authHandler: ['keyboard-interactive'],
        hostVerifier: () => true,
      });
    });
    const out = await new Promise<string>((resolve, reject) => {
      client.exec('echo kbd-ok', (err, stream) => {
        if (err) return reject(err);
        let text = '';
        stream.on('data', (d: Buffer) => {
          text += d.toString();
        });
        stream.on('close', () => resolve(text));
      });
    });
    client.end();
    assert.deepEqual(prompts, ['Chaperone identity token: ']);
    assert.equal(out, 'kbd-ok\n');
  });
});

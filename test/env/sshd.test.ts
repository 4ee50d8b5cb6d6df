import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { Client } from 'ssh2';
import { testEnv } from './index.ts';
import { tcpAccepts } from './net.ts';
import { startSshd } from './sshd.ts';
import type { SshdInfo } from './types.ts';

const { sshd } = await testEnv(['sshd']);
const exec = promisify(execFile);

/** Options making OpenSSH clients non-interactive and strict about the host key. */
function clientOptions(info: SshdInfo): string[] {
  return [
    '-i',
    info.privateKeyPath,
    '-o',
    'BatchMode=yes',
    '-o',
    'IdentitiesOnly=yes',
    '-o',
    `UserKnownHostsFile=${info.knownHostsPath}`,
    '-o',
    'StrictHostKeyChecking=yes',
    '-o',
    'GlobalKnownHostsFile=/dev/null',
  ];
}

test('ssh runs a command with the key, verifying the host key', async () => {
  const { stdout } = await exec('ssh', [
    ...clientOptions(sshd),
    '-p',
    String(sshd.port),
    `${sshd.user}@${sshd.host}`,
    'echo "hello from $(id -un)"; pwd',
  ]);
  assert.equal(stdout, `hello from ${sshd.user}\n${sshd.homeDir}\n`);
});

test('ssh refuses a server whose host key is not the known one', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'chaperone-sshd-kh-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const wrongKnownHosts = join(dir, 'known_hosts');
  const line = await readFile(sshd.knownHostsPath, 'utf8');
  // Another valid ed25519 key in place of the server's.
  await exec('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'other')]);
  const other = (await readFile(join(dir, 'other.pub'), 'utf8')).split(' ');
  await writeFile(wrongKnownHosts, `${line.split(' ')[0]} ${other[0]} ${other[1]}\n`);
  await assert.rejects(
    exec('ssh', [
      ...clientOptions({ ...sshd, knownHostsPath: wrongKnownHosts }),
      '-p',
      String(sshd.port),
      `${sshd.user}@${sshd.host}`,
      'true',
    ]),
    /HOST IDENTIFICATION HAS CHANGED|Host key verification failed/,
  );
});

test('sftp puts a file that lands in the home directory', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'chaperone-sftp-'));
  const name = `upload-${randomBytes(6).toString('hex')}.txt`;
  const remote = join(sshd.homeDir, name);
  t.after(() => Promise.all([rm(dir, { recursive: true, force: true }), rm(remote, { force: true })]));
  const local = join(dir, 'local.txt');
  await writeFile(local, 'via sftp\n');
  const batch = join(dir, 'batch');
  await writeFile(batch, `put ${local} ${name}\n`);
  await exec('sftp', [
    ...clientOptions(sshd),
    '-P',
    String(sshd.port),
    '-b',
    batch,
    `${sshd.user}@${sshd.host}`,
  ]);
  assert.equal(await readFile(remote, 'utf8'), 'via sftp\n');
  const owner = await stat(remote);
  assert.notEqual(owner.uid, 0, 'written by the login user, not root');
});

function ssh2Exec(config: {
  password?: string;
  command: string;
}): Promise<{ stdout: string; code: number | undefined }> {
  return new Promise((resolve, reject) => {
    const conn = new Client();
    conn
      .on('ready', () => {
        conn.exec(config.command, (err, stream) => {
          if (err) return reject(err);
          let stdout = '';
          let code: number | undefined;
          stream.on('data', (d: Buffer) => {
            stdout += d.toString();
          });
          stream.on('exit', (c: number) => {
            code = c;
          });
          stream.on('close', () => {
            conn.end();
            resolve({ stdout, code });
          });
        });
      })
      .on('error', reject)
      .connect({
        host: sshd.host,
        port: sshd.port,
        username: sshd.user,
        password: config.password,
        tryKeyboard: false,
        readyTimeout: 10_000,
      });
  });
}

test('ssh2 logs in with the password and runs a command', async () => {
  const result = await ssh2Exec({ password: sshd.password, command: 'echo ok; exit 3' });
  assert.deepEqual(result, { stdout: 'ok\n', code: 3 });
});

test('ssh2 with a wrong password is refused', async () => {
  await assert.rejects(ssh2Exec({ password: 'wrong', command: 'true' }), /authentication methods failed/);
});

test('an sshd of its own starts, and stop() shuts it down', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'chaperone-sshd-own-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const started = Date.now();
  const own = await startSshd(join(dir, 'sshd'));
  t.diagnostic(`warm start of sshd: ${Date.now() - started} ms`);
  assert.ok(await tcpAccepts(own.info.host, own.info.port));
  await own.stop();
  assert.equal(await tcpAccepts(own.info.host, own.info.port), false);
});

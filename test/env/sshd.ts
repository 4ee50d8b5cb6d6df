// OpenSSH's sshd with its own config, keys and log under `dir`, on 127.0.0.1 and a random port.
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { freePort, LOOPBACK, run, spawnOwned, waitUntil } from './net.ts';
import type { RunningPart } from './part.ts';
import { ensureTestUser, SSHD_TEST_USER } from './sshd-user.ts';
import type { SshdInfo } from './types.ts';

const SSHD = '/usr/sbin/sshd';
const SSH_KEYGEN = '/usr/bin/ssh-keygen';

export interface SshdConfigInput {
  port: number;
  hostKeyPath: string;
  authorizedKeysPath: string;
  pidFile: string;
  user: string;
}

/** The sshd_config of the test server: password and key logins for one user, sftp in-process. */
export function renderSshdConfig(c: SshdConfigInput): string {
  return [
    `Port ${c.port}`,
    `ListenAddress ${LOOPBACK}`,
    `HostKey ${c.hostKeyPath}`,
    `PidFile ${c.pidFile}`,
    `AuthorizedKeysFile ${c.authorizedKeysPath}`,
    `AllowUsers ${c.user}`,
    'PermitRootLogin no',
    'PubkeyAuthentication yes',
    'PasswordAuthentication yes',
    'KbdInteractiveAuthentication no',
    // Passwords are checked against /etc/shadow directly; no PAM stack of the host gets involved.
    'UsePAM no',
    // The keys live under the temporary directory, whose parents (/tmp) are world-writable.
    'StrictModes no',
    'UseDNS no',
    'PrintMotd no',
    'PrintLastLog no',
    'X11Forwarding no',
    'AllowTcpForwarding yes',
    // Load tests open many connections at once; the default 10:30:100 would drop some.
    'MaxStartups 300:30:600',
    'MaxSessions 100',
    'LogLevel VERBOSE',
    'Subsystem sftp internal-sftp',
    '',
  ].join('\n');
}

async function keygen(path: string, comment: string): Promise<string> {
  await run(SSH_KEYGEN, ['-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', path]);
  return (await readFile(`${path}.pub`, 'utf8')).trim();
}

/** True once the server sends its SSH identification line. */
function sendsBanner(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: LOOPBACK, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(2000, () => done(false));
    socket.once('error', () => done(false));
    socket.once('data', (chunk) => done(chunk.toString('latin1').startsWith('SSH-2.0-')));
  });
}

/** Starts sshd under `dir` for the test user (created if missing; needs root). */
export async function startSshd(dir: string): Promise<RunningPart<SshdInfo>> {
  const user = await ensureTestUser();
  await mkdir(dir, { recursive: true });
  // The user's session reads authorized_keys with the user's rights.
  await chmod(dir, 0o711);
  // Debian's sshd refuses to start without its privilege-separation directory.
  await mkdir('/run/sshd', { recursive: true, mode: 0o755 });
  const hostKeyPath = join(dir, 'ssh_host_ed25519_key');
  const privateKeyPath = join(dir, 'client_ed25519');
  const authorizedKeysPath = join(dir, 'authorized_keys');
  const [hostPub, clientPub] = await Promise.all([
    keygen(hostKeyPath, 'chaperone-test-host'),
    keygen(privateKeyPath, 'chaperone-test-client'),
  ]);
  await writeFile(authorizedKeysPath, `${clientPub}\n`, { mode: 0o644 });
  const port = await freePort();
  const knownHostsPath = join(dir, 'known_hosts');
  const [keyType, keyBlob] = hostPub.split(' ');
  await writeFile(knownHostsPath, `[${LOOPBACK}]:${port} ${keyType} ${keyBlob}\n`);
  const configPath = join(dir, 'sshd_config');
  await writeFile(
    configPath,
    renderSshdConfig({
      port,
      hostKeyPath,
      authorizedKeysPath,
      pidFile: join(dir, 'sshd.pid'),
      user: user.name,
    }),
  );
  const proc = spawnOwned(SSHD, ['-D', '-e', '-f', configPath], {
    name: 'sshd',
    logFile: join(dir, 'sshd.log'),
    env: { PATH: '/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin', LANG: 'C.UTF-8' },
  });
  try {
    await waitUntil('sshd', () => sendsBanner(port), { process: proc });
  } catch (err) {
    await proc.stop();
    throw err;
  }
  return {
    info: {
      host: LOOPBACK,
      port,
      user: SSHD_TEST_USER,
      password: user.password,
      privateKeyPath,
      knownHostsPath,
      homeDir: user.home,
    },
    stop: () => proc.stop(),
  };
}

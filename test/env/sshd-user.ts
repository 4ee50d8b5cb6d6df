// The throwaway login of the test sshd: a system user with a home directory and a password kept in
// the cache (readable by its owner only), so parallel test processes agree on it.
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { cacheDir } from './binaries.ts';
import { run } from './net.ts';
import { type SystemUser, systemUser } from './postgres-user.ts';

export const SSHD_TEST_USER = 'chaperone-test';

/** The password of the test user, created once per machine. */
async function stablePassword(): Promise<string> {
  const file = join(cacheDir, 'sshd-test-user.password');
  await mkdir(cacheDir, { recursive: true });
  try {
    await writeFile(file, randomBytes(18).toString('base64url'), { mode: 0o600, flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  return (await readFile(file, 'utf8')).trim();
}

/** Creates the test user when missing and sets its password; needs root. */
export async function ensureTestUser(): Promise<SystemUser & { password: string }> {
  if (process.getuid?.() !== 0) {
    throw new Error(
      `the sshd test part needs root: it runs sshd and creates the login user ${SSHD_TEST_USER} (run the tests as root, e.g. in the CI container)`,
    );
  }
  if (!(await systemUser(SSHD_TEST_USER))) {
    try {
      await run('/usr/sbin/useradd', [
        '--create-home',
        '--shell',
        '/bin/bash',
        '--user-group',
        SSHD_TEST_USER,
      ]);
    } catch (err) {
      // A parallel test process may have created it first.
      if (!(await systemUser(SSHD_TEST_USER))) throw err;
    }
  }
  const user = await systemUser(SSHD_TEST_USER);
  if (!user) throw new Error(`user ${SSHD_TEST_USER} missing after useradd`);
  const password = await stablePassword();
  // chpasswd takes /etc/shadow's lock, so concurrent runs setting the same password are safe.
  await run('/usr/sbin/chpasswd', [], { input: `${SSHD_TEST_USER}:${password}\n` });
  return { ...user, password };
}

// PostgreSQL refuses to run as root; as root, the test cluster runs as Debian's `postgres` user.
import { readFile } from 'node:fs/promises';

export interface SystemUser {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

/** A user of /etc/passwd, or undefined. */
export async function systemUser(name: string): Promise<SystemUser | undefined> {
  const passwd = await readFile('/etc/passwd', 'utf8');
  for (const line of passwd.split('\n')) {
    const [user, , uid, gid, , home] = line.split(':');
    if (user === name && uid !== undefined && gid !== undefined) {
      return { name, uid: Number(uid), gid: Number(gid), home: home ?? '/' };
    }
  }
  return undefined;
}

/** Whom to run the server as: nobody else when not root; `postgres` (else `nobody`) as root. */
export async function unprivilegedUser(): Promise<SystemUser | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  const user = (await systemUser('postgres')) ?? (await systemUser('nobody'));
  if (!user)
    throw new Error('running as root, but neither a `postgres` nor a `nobody` user exists to run PostgreSQL');
  return user;
}

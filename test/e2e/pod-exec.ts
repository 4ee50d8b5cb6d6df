// Runs one container's process the way a kubelet would, as far as this machine allows: inside the
// pod's network namespace, in a private mount namespace where the pod's volumes are bound at their
// mountPaths, as the container's UID/GID, with its env. There is no image: the runner maps the
// container's command to the same program in this checkout (see container-programs.ts).
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdir } from 'node:fs/promises';

export interface BindMount {
  source: string;
  target: string;
  readOnly?: boolean;
}

export interface PodProcessSpec {
  netns: string;
  uid: number;
  gid: number;
  env: Record<string, string>;
  mounts: BindMount[];
  command: string;
  args: string[];
  cwd?: string;
}

/**
 * Mount roots: a tmpfs is put over each inside the private mount namespace, so mountPaths below
 * them can be created without touching the host's filesystem.
 */
// /var/run is a symlink to /run, so roots and targets are compared in their /run form.
const MOUNT_ROOTS = ['/etc/chaperone', '/run/chaperone', '/run/secrets', '/opt/chaperone'];

function rootOf(target: string): string {
  const normalized = target.replace(/^\/var\/run\//, '/run/');
  const root = MOUNT_ROOTS.find((r) => normalized === r || normalized.startsWith(`${r}/`));
  if (!root) throw new Error(`pod runner cannot mount at ${target}: only below ${MOUNT_ROOTS.join(', ')}`);
  return root;
}

const quote = (s: string) => `'${s.replaceAll("'", "'\\''")}'`;

/** The shell script run as root inside the new mount namespace before dropping privileges. */
export function mountScript(mounts: BindMount[]): string {
  const roots = [...new Set(mounts.map((m) => rootOf(m.target)))];
  const lines = roots.map((r) => `mount -t tmpfs -o mode=0755 chaperone-pod ${quote(r)}`);
  for (const m of mounts) {
    const target = m.target.replace(/^\/var\/run\//, '/run/');
    lines.push(`mkdir -p ${quote(target)}`, `mount --bind ${quote(m.source)} ${quote(target)}`);
    if (m.readOnly) lines.push(`mount -o remount,bind,ro ${quote(target)}`);
  }
  return lines.join(' && ');
}

export async function ensureMountRoots(): Promise<void> {
  await Promise.all(MOUNT_ROOTS.map((r) => mkdir(r, { recursive: true })));
}

export function spawnInPod(spec: PodProcessSpec): ChildProcess {
  const script = [
    mountScript(spec.mounts) || 'true',
    `exec setpriv --reuid=${spec.uid} --regid=${spec.gid} --clear-groups -- ${[spec.command, ...spec.args].map(quote).join(' ')}`,
  ].join(' && ');
  return spawn(
    'ip',
    ['netns', 'exec', spec.netns, 'unshare', '--mount', '--propagation', 'private', 'sh', '-c', script],
    {
      env: { PATH: '/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin', ...spec.env },
      cwd: spec.cwd ?? '/',
      stdio: ['pipe', 'pipe', 'pipe'],
    },
  );
}

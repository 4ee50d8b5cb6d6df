// Runs the cached helm binary (test/env/binaries.ts) on charts/chaperone.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { requireBinary } from '../../test/env/binaries.ts';

const exec = promisify(execFile);
export const CHART = join(import.meta.dirname, '..', 'chaperone');

export interface Run {
  ok: boolean;
  stdout: string;
  stderr: string;
}

export async function helm(args: string[]): Promise<Run> {
  try {
    const { stdout, stderr } = await exec(requireBinary('helm'), args, {
      maxBuffer: 64 << 20,
      // No repository config or cache of the user's: the chart has no dependencies.
      env: {
        ...process.env,
        HELM_CACHE_HOME: '/tmp/chaperone-helm/cache',
        HELM_CONFIG_HOME: '/tmp/chaperone-helm/config',
      },
    });
    return { ok: true, stdout, stderr };
  } catch (error) {
    const e = error as { stdout?: string; stderr?: string };
    return { ok: false, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

/** `helm template` of the chart as release `chaperone` in `namespace`, with values files. */
export async function template(namespace: string, valuesFiles: string[] = []): Promise<Run> {
  return helm([
    'template',
    'chaperone',
    CHART,
    '--namespace',
    namespace,
    ...valuesFiles.flatMap((f) => ['-f', f]),
  ]);
}

/** The NOTES.txt helm prints after `helm install` (client-side dry run: no cluster contacted). */
export async function notes(namespace: string, valuesFiles: string[] = []): Promise<string> {
  const out = await helm([
    'install',
    'chaperone',
    CHART,
    '--namespace',
    namespace,
    '--dry-run=client',
    '--kubeconfig',
    '/nonexistent',
    ...valuesFiles.flatMap((f) => ['-f', f]),
  ]);
  if (!out.ok) throw new Error(out.stderr);
  const at = out.stdout.indexOf('\nNOTES:\n');
  if (at < 0) throw new Error('no NOTES in the output of helm install');
  return out.stdout.slice(at + '\nNOTES:\n'.length);
}

/** Generated signing keys differ on every render: the goldens hold a placeholder. */
export function redactKeys(manifest: string): string {
  return manifest.replace(/^(\s+privateKey: )\S+$/gm, '$1REDACTED');
}

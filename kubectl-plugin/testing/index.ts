// Test support of the kubectl plugin: users as service accounts holding exactly the RBAC a test
// gives them (with a kubeconfig file each), and `kubectl chaperone ...` run through the real kubectl,
// which finds kubectl-chaperone on PATH (plugin discovery).
import { spawn } from 'node:child_process';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CoreV1Api, KubeConfig, RbacAuthorizationV1Api, type V1PolicyRule } from '@kubernetes/client-node';
import type { KubeInfo } from '../../test/env/index.ts';
import { type RunResult, runProcess } from '../../test/testing/run-process.ts';

export const PLUGIN_MAIN = join(import.meta.dirname, '..', 'main.ts');

/** A service account `name` in `namespace` bound to `rules`; returns the path of its kubeconfig. */
export async function userWithRules(
  admin: KubeConfig,
  kube: KubeInfo,
  dir: string,
  namespace: string,
  name: string,
  rules: V1PolicyRule[],
): Promise<string> {
  const core = admin.makeApiClient(CoreV1Api);
  const rbac = admin.makeApiClient(RbacAuthorizationV1Api);
  await core.createNamespacedServiceAccount({ namespace, body: { metadata: { name } } });
  if (rules.length > 0) {
    await rbac.createNamespacedRole({ namespace, body: { metadata: { name }, rules } });
    await rbac.createNamespacedRoleBinding({
      namespace,
      body: {
        metadata: { name },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name },
        subjects: [{ kind: 'ServiceAccount', name, namespace }],
      },
    });
  }
  const token = await core.createNamespacedServiceAccountToken({
    name,
    namespace,
    body: { spec: { audiences: [], expirationSeconds: 3600 } },
  });
  const kc = new KubeConfig();
  kc.loadFromClusterAndUser(
    {
      name: 'test',
      server: kube.server,
      caData: Buffer.from(kube.caPem).toString('base64'),
      skipTLSVerify: false,
    },
    { name, token: token.status!.token },
  );
  kc.contexts[0] = { ...kc.contexts[0]!, namespace };
  const file = join(dir, `${namespace}-${name}.kubeconfig`);
  await writeFile(file, kc.exportConfig(), { mode: 0o600 });
  return file;
}

/** A directory holding `kubectl-chaperone` (this checkout's plugin under this node) for PATH. */
export async function pluginBinDir(dir: string): Promise<string> {
  const bin = join(dir, 'bin');
  await mkdir(bin, { recursive: true });
  const file = join(bin, 'kubectl-chaperone');
  await writeFile(file, `#!/bin/sh\nexec '${process.execPath}' '${PLUGIN_MAIN}' "$@"\n`);
  await chmod(file, 0o755);
  return bin;
}

export type Ran = RunResult;

/** Runs `kubectl chaperone <args>` as the user of `kubeconfig`, the plugin found on PATH by kubectl. */
export function kubectlChaperone(
  kube: KubeInfo,
  binDir: string,
  kubeconfig: string,
  args: string[],
): Promise<Ran> {
  return run(kube.kubectl, ['chaperone', ...args], {
    PATH: `${binDir}:${process.env.PATH}`,
    KUBECONFIG: kubeconfig,
    HOME: process.env.HOME ?? '/root',
  });
}

export function run(
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  timeoutMs = 60_000,
): Promise<Ran> {
  return runProcess(command, args, { env, timeoutMs });
}

/** A long-running command (kubectl chaperone watch): its lines so far, and a way to wait for one. */
export function follow(command: string, args: string[], env: NodeJS.ProcessEnv) {
  const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  let stderr = '';
  let partial = '';
  const waiters: { match: RegExp; resolve: (line: string) => void }[] = [];
  child.stdout.on('data', (d: Buffer) => {
    partial += d.toString();
    const parts = partial.split('\n');
    partial = parts.pop()!;
    for (const line of parts) {
      lines.push(line);
      for (const w of waiters.splice(0)) {
        if (w.match.test(line)) w.resolve(line);
        else waiters.push(w);
      }
    }
  });
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  return {
    lines,
    stderr: () => stderr,
    /** The first line (seen or to come) matching `match`. */
    line(match: RegExp, timeoutMs = 30_000): Promise<string> {
      const seen = lines.find((l) => match.test(l));
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () =>
            reject(
              new Error(`no line matching ${match} in 30 s; stdout ${lines.join('\n')}; stderr ${stderr}`),
            ),
          timeoutMs,
        );
        waiters.push({
          match,
          resolve: (l) => {
            clearTimeout(timer);
            resolve(l);
          },
        });
      });
    },
    async stop(): Promise<number | null> {
      if (child.exitCode !== null) return child.exitCode;
      const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
      child.kill('SIGTERM');
      return exited;
    },
  };
}

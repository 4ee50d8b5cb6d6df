// buildShared refuses an approvals backend it cannot run, with an error naming what is missing, so
// a bad config fails at start (or is rejected on reload) instead of denying every approval later.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { pino } from 'pino';
import { type SidecarConfigInput, sidecarConfigSchema } from '../config/index.ts';
import { loadKubeConfig } from './modules.ts';
import { buildShared } from './runtime.ts';

const logger = pino({ level: 'silent' });
const pod = { serviceAccount: 'agent', namespace: 'agents', pod: 'agent-0' };

function config(approvals: SidecarConfigInput['approvals']) {
  return sidecarConfigSchema.parse({
    apiVersion: 'chaperone.dev/sidecar-v1',
    policy: { name: 'p' },
    targets: [
      { name: 'db', protocol: 'postgres', upstream: { host: '127.0.0.1', port: 5432 }, listenPort: 15432 },
    ],
    approvals,
    recording: { store: { url: 'file:///tmp/x' }, signingKeyFile: '/k', spoolDir: '/s' },
  } satisfies SidecarConfigInput);
}

describe('buildShared approvals', () => {
  const dirs: string[] = [];
  after(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  test('kubernetes outside a cluster and without KUBECONFIG is refused', () => {
    assert.throws(
      () => buildShared(config({ backend: 'kubernetes' }), pod, logger, {}),
      /approvals\.backend kubernetes: not running in a cluster \(KUBERNETES_SERVICE_HOST\/PORT unset\) and KUBECONFIG not set/,
    );
  });

  test('kubernetes without the pod namespace is refused', () => {
    assert.throws(
      () => buildShared(config({ backend: 'kubernetes' }), { serviceAccount: 'agent' }, logger, {}),
      /needs the pod namespace \(CHAPERONE_POD_NAMESPACE\)/,
    );
  });

  test('an unreadable KUBECONFIG is named in the error', () => {
    assert.throws(
      () =>
        buildShared(config({ backend: 'kubernetes' }), pod, logger, {
          KUBECONFIG: '/nonexistent/kubeconfig',
        }),
      /cannot load KUBECONFIG \/nonexistent\/kubeconfig/,
    );
  });

  test('local without localDir is refused; none builds', () => {
    assert.throws(() => buildShared(config({ backend: 'local' }), pod, logger, {}), /localDir/);
    const shared = buildShared(config({ backend: 'none' }), pod, logger, {});
    shared.verifier.close();
  });

  test('KUBECONFIG is honoured; in-cluster env is used without it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'chaperone-kubeconfig-'));
    dirs.push(dir);
    const file = join(dir, 'kubeconfig');
    await writeFile(
      file,
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'c', cluster: { server: 'https://127.0.0.1:6443' } }],
        users: [{ name: 'u', user: { token: 't' } }],
        contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }],
        'current-context': 'x',
      }),
    );
    assert.equal(loadKubeConfig({ KUBECONFIG: file }).getCurrentCluster()?.server, 'https://127.0.0.1:6443');
    assert.throws(() => loadKubeConfig({ KUBECONFIG: `${file}:${file}` }), /names 2 files/);
    const inCluster = loadKubeConfig({ KUBERNETES_SERVICE_HOST: '10.0.0.1', KUBERNETES_SERVICE_PORT: '443' });
    assert.equal(inCluster.getCurrentUser()?.name, 'inClusterUser');
    const shared = buildShared(config({ backend: 'kubernetes' }), pod, logger, { KUBECONFIG: file });
    shared.verifier.close();
  });
});

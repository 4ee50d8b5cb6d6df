// ResilientInformer against the real apiserver reached through a TCP proxy that the test cuts:
// client-node's ListWatch stops on such errors; ours restarts, relists, and delivers what changed
// while it was cut off, deletions included.
import assert from 'node:assert/strict';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { CoreV1Api, KubeConfig, type V1ConfigMap } from '@kubernetes/client-node';
import { pino } from 'pino';
import { testEnv } from '../../test/env/index.ts';
import { kubeConfigFor } from '../../test/env/kube.ts';
import { createNamespace, waitFor } from '../testing/kube.ts';
import { type InformerEvent, ResilientInformer } from './informer.ts';

const env = await testEnv(['kube']);

/** A TCP proxy to the apiserver that can drop every connection and refuse new ones. */
class CuttableProxy {
  readonly #target: URL;
  readonly #sockets = new Set<Socket>();
  #server: Server | undefined;
  port = 0;

  constructor(target: string) {
    this.#target = new URL(target);
  }

  async up(): Promise<void> {
    const server = createServer((client) => {
      const remote = connect(Number(this.#target.port), this.#target.hostname);
      for (const s of [client, remote]) {
        this.#sockets.add(s);
        s.on('close', () => this.#sockets.delete(s));
        s.on('error', () => s.destroy());
      }
      client.pipe(remote).pipe(client);
      client.on('close', () => remote.destroy());
      remote.on('close', () => client.destroy());
    });
    await new Promise<void>((resolve) => server.listen(this.port, '127.0.0.1', resolve));
    this.port = (server.address() as { port: number }).port;
    this.#server = server;
  }

  async down(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    for (const socket of this.#sockets) socket.destroy();
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  }
}

describe('ResilientInformer', { timeout: 120_000 }, () => {
  const admin = kubeConfigFor(env.kube);
  const core = admin.makeApiClient(CoreV1Api);
  const proxy = new CuttableProxy(env.kube.server);
  let ns: string;
  let informer: ResilientInformer<V1ConfigMap>;
  const events: [InformerEvent, string][] = [];
  let restarts = 0;
  const labels = { 'chaperone.dev/informer-test': 'yes' };

  before(async () => {
    ns = await createNamespace(admin, 'informer');
    for (const name of ['a', 'b'])
      await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name, labels } } });
    await proxy.up();
    const viaProxy = new KubeConfig();
    const cluster = admin.getCurrentCluster()!;
    const user = admin.getCurrentUser()!;
    viaProxy.loadFromClusterAndUser({ ...cluster, server: `https://127.0.0.1:${proxy.port}` }, user);
    const api = viaProxy.makeApiClient(CoreV1Api);
    informer = new ResilientInformer<V1ConfigMap>({
      name: 'test',
      kubeConfig: viaProxy,
      path: `/api/v1/namespaces/${ns}/configmaps`,
      labelSelector: 'chaperone.dev/informer-test=yes',
      list: () =>
        api.listNamespacedConfigMap({ namespace: ns, labelSelector: 'chaperone.dev/informer-test=yes' }),
      onEvent: (event, cm) => events.push([event, cm.metadata?.name ?? '']),
      onRestart: () => {
        restarts += 1;
      },
      logger: pino({ level: 'silent' }),
      baseDelayMs: 100,
      maxDelayMs: 500,
    });
    await informer.start();
  });

  after(async () => {
    await informer?.stop();
    await proxy.down();
    await core.deleteNamespace({ name: ns }).catch(() => undefined);
  });

  it('lists, then watches', async () => {
    assert.deepEqual(events.map(([e, n]) => `${e}:${n}`).sort(), ['add:a', 'add:b']);
    await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'c', labels } } });
    await waitFor('watch event for c', () => events.some(([e, n]) => e === 'add' && n === 'c'));
  });

  it('restarts after the connection is cut and delivers what changed meanwhile, deletions included', async () => {
    events.length = 0;
    await proxy.down();
    await core.deleteNamespacedConfigMap({ name: 'b', namespace: ns });
    await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'd', labels } } });
    await core.replaceNamespacedConfigMap({
      name: 'a',
      namespace: ns,
      body: { metadata: { name: 'a', labels }, data: { changed: 'yes' } },
    });
    await proxy.up();
    await waitFor('relist events', () => events.some(([e, n]) => e === 'add' && n === 'd'), {
      timeoutMs: 30_000,
    });
    assert.ok(restarts > 0);
    assert.ok(
      events.some(([e, n]) => e === 'delete' && n === 'b'),
      `delete of b delivered: ${JSON.stringify(events)}`,
    );
    assert.ok(events.some(([e, n]) => e === 'update' && n === 'a'));
    assert.deepEqual(
      informer
        .list()
        .map((cm) => cm.metadata?.name)
        .sort(),
      ['a', 'c', 'd'],
    );
    assert.equal(informer.get('a', ns)?.data?.changed, 'yes');

    // And it keeps watching afterwards.
    await core.deleteNamespacedConfigMap({ name: 'c', namespace: ns });
    await waitFor('watch delete of c', () => events.some(([e, n]) => e === 'delete' && n === 'c'));
  });
});

// The operator and ssh targets against a real kube-apiserver: the sidecar's host key Secret is
// created once (a later reconcile keeps the same key agents pinned) and the agents' known_hosts
// ConfigMap follows the policy's ssh listen ports.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { CoreV1Api, CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import { testEnv } from '../test/env/index.ts';
import { kubeConfigFor } from '../test/env/kube.ts';
import { sshHostKeySecretName, sshKnownHostsName } from './render/index.ts';
import {
  type OperatorUnderTest,
  POLICY_API,
  samplePolicy,
  startOperatorInNamespace,
  waitFor,
} from './testing/kube.ts';

const env = await testEnv(['kube']);
const api = POLICY_API;

describe('SessionPolicy with ssh targets', () => {
  let kc: KubeConfig;
  let core: CoreV1Api;
  let custom: CustomObjectsApi;
  let ns: string;
  let fixture: OperatorUnderTest | undefined;

  before(async () => {
    kc = kubeConfigFor(env.kube);
    core = kc.makeApiClient(CoreV1Api);
    custom = kc.makeApiClient(CustomObjectsApi);
    fixture = await startOperatorInNamespace(kc, 'ssh-policies');
    ns = fixture.namespace;
  });

  after(() => fixture?.stop());

  const sshTarget = (listenPort: number) => ({
    name: 'bastion',
    protocol: 'ssh',
    upstream: { host: '10.0.0.22', port: 22 },
    listenPort,
    ssh: {
      upstreamHostKeys: ['ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl'],
    },
  });

  it('creates the host key Secret once and renders known_hosts for the listen ports', async () => {
    const base = samplePolicy('sshy', ns);
    base.spec.targets = [...base.spec.targets, sshTarget(15022)] as never;
    await custom.createNamespacedCustomObject({ ...api, namespace: ns, body: base });
    const knownHosts = () =>
      core
        .readNamespacedConfigMap({ name: sshKnownHostsName('sshy'), namespace: ns })
        .then((cm) => cm.data?.known_hosts)
        .catch(() => undefined);
    const first = await waitFor('known_hosts for 15022', async () => {
      const kh = await knownHosts();
      return kh?.includes('[127.0.0.1]:15022') ? kh : undefined;
    });
    const secret = await core.readNamespacedSecret({ name: sshHostKeySecretName('sshy'), namespace: ns });
    const pub = Buffer.from(secret.data!.publicKey!, 'base64').toString('utf8');
    assert.match(
      Buffer.from(secret.data!.privateKey!, 'base64').toString('utf8'),
      /BEGIN OPENSSH PRIVATE KEY/,
    );
    assert.equal(first, `[127.0.0.1]:15022,[localhost]:15022 ${pub.split(' ').slice(0, 2).join(' ')}\n`);
    assert.equal(secret.metadata?.ownerReferences?.[0]?.name, 'sshy');

    // A new listen port: known_hosts follows, the key stays the one agents already trust.
    await custom.patchNamespacedCustomObject({
      ...api,
      namespace: ns,
      name: 'sshy',
      body: [{ op: 'replace', path: '/spec/targets/1/listenPort', value: 15023 }],
    });
    const second = await waitFor('known_hosts for 15023', async () => {
      const kh = await knownHosts();
      return kh?.includes('[127.0.0.1]:15023') ? kh : undefined;
    });
    const again = await core.readNamespacedSecret({ name: sshHostKeySecretName('sshy'), namespace: ns });
    assert.equal(again.data!.privateKey, secret.data!.privateKey);
    assert.ok(second.endsWith(`${pub.split(' ')[1]}\n`));
  });
});

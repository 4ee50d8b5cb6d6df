// The real node (test/env/node.ts): kubelet, containerd, kube-proxy, CoreDNS and the local registry on
// this machine. Runs only when the `node` part is asked for (`make test` and `make node-test` ask
// for it). Every pod tolerates the node's taint (NODE_TAINT), which keeps other tests' pods off it.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { type KubeInfo, type NodeInfo, testEnv } from '../env/index.ts';
import { NODE_TOLERATION, safetyNetDrops } from '../env/node.ts';
import { nodePartSkip } from '../testing/exclusive.ts';
import { httpdPod } from './testing/pods.ts';

const exec = promisify(execFile);
const skip = nodePartSkip();

describe('the real node', { skip }, () => {
  let kube: KubeInfo;
  let node: NodeInfo;
  const ns = `node-test-${process.pid}`;

  const kubectl = async (...args: string[]) => {
    const { stdout } = await exec(kube.kubectl, [`--kubeconfig=${kube.kubeconfigPath}`, ...args], {
      maxBuffer: 8 << 20,
    });
    return stdout;
  };
  /** Applies a manifest given as a JS object. */
  const apply = async (object: unknown) => {
    const child = execFile(kube.kubectl, [`--kubeconfig=${kube.kubeconfigPath}`, 'apply', '-f', '-']);
    const done = new Promise<void>((resolve, reject) => {
      let err = '';
      child.stderr?.on('data', (d) => {
        err += d;
      });
      child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`kubectl apply: ${err}`))));
    });
    child.stdin?.end(JSON.stringify(object));
    await done;
  };
  /** Runs `sh -c script` in a pod of the test image, waits for it to end, returns phase and logs. */
  const runPod = async (name: string, script: string, labels: Record<string, string> = {}) => {
    await apply({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name, namespace: ns, labels },
      spec: {
        tolerations: [NODE_TOLERATION],
        restartPolicy: 'Never',
        containers: [{ name: 'main', image: node.testImage, command: ['sh', '-c', script] }],
      },
    });
    await kubectl(
      'wait',
      '-n',
      ns,
      `pod/${name}`,
      '--for=jsonpath={.status.phase}=Succeeded',
      '--timeout=90s',
    ).catch(() => {});
    const phase = await kubectl('get', '-n', ns, `pod/${name}`, '-o', 'jsonpath={.status.phase}');
    const logs = await kubectl('logs', '-n', ns, name);
    return { phase, logs };
  };

  before(async () => {
    const env = await testEnv(['kube', 'node']);
    kube = env.kube;
    node = env.node;
    await kubectl('create', 'namespace', ns);
    // The default ServiceAccount (kube-controller-manager) must exist before pods are admitted.
    for (let i = 0; i < 100; i++) {
      if (
        await kubectl('get', '-n', ns, 'serviceaccount', 'default').then(
          () => true,
          () => false,
        )
      )
        break;
      await new Promise((r) => setTimeout(r, 100));
    }
  });

  after(async () => {
    if (kube) await kubectl('delete', 'namespace', ns, '--wait=false').catch(() => {});
  });

  test('one node registers with a non-loopback address and is Ready', async () => {
    const nodes = JSON.parse(await kubectl('get', 'nodes', '-o', 'json')) as {
      items: {
        metadata: { name: string };
        status: {
          conditions: { type: string; status: string }[];
          addresses: { type: string; address: string }[];
          nodeInfo: { kubeletVersion: string; containerRuntimeVersion: string };
        };
      }[];
    };
    assert.equal(nodes.items.length, 1);
    const [n] = nodes.items;
    assert.equal(n?.metadata.name, node.name);
    assert.ok(n?.status.conditions.some((c) => c.type === 'Ready' && c.status === 'True'));
    const internal = n?.status.addresses.find((a) => a.type === 'InternalIP')?.address;
    assert.equal(internal, node.ip);
    assert.doesNotMatch(internal ?? '', /^127\./);
    assert.match(n?.status.nodeInfo.kubeletVersion ?? '', /^v1\.\d+\.\d+$/);
    assert.match(n?.status.nodeInfo.containerRuntimeVersion ?? '', /^containerd:\/\//);
  });

  test("a pod that does not tolerate the node's taint is not scheduled, so its image is never pulled", async () => {
    // As the default suite's other tests create pods: an image of a registry that exists nowhere.
    await apply({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'intolerant', namespace: ns },
      spec: { containers: [{ name: 'main', image: 'registry.invalid/agent:1' }] },
    });
    await kubectl(
      'wait',
      '-n',
      ns,
      'pod/intolerant',
      '--for=jsonpath={.status.conditions[?(@.type=="PodScheduled")].reason}=Unschedulable',
      '--timeout=60s',
    );
    const pod = JSON.parse(await kubectl('get', '-n', ns, 'pod/intolerant', '-o', 'json')) as {
      spec: { nodeName?: string };
      status: { conditions?: { type: string; message?: string }[] };
    };
    const scheduled = pod.status.conditions?.find((c) => c.type === 'PodScheduled');
    assert.match(scheduled?.message ?? '', /1 node\(s\) had untolerated taint/, scheduled?.message);
    assert.equal(pod.spec.nodeName, undefined);
    // The taint it does not tolerate is the node's own (NODE_TAINT), the only one the node has.
    const taints = JSON.parse(await kubectl('get', 'node', node.name, '-o', 'jsonpath={.spec.taints}')) as {
      key: string;
      effect: string;
    }[];
    assert.deepEqual(
      taints.map((t) => `${t.key}:${t.effect}`),
      [`${NODE_TOLERATION.key}:${NODE_TOLERATION.effect}`],
    );
    await kubectl('delete', '-n', ns, 'pod/intolerant', '--wait=false');
  });

  test('kubectl run starts a pod of the test image pulled from the local registry', async () => {
    assert.ok(node.testImage.startsWith(`${node.registry}/`));
    await kubectl(
      'run',
      '-n',
      ns,
      'hello',
      `--image=${node.testImage}`,
      '--restart=Never',
      `--overrides=${JSON.stringify({ spec: { tolerations: [NODE_TOLERATION] } })}`,
      '--command',
      '--',
      'sh',
      '-c',
      'echo hello from $(hostname)',
    );
    await kubectl('wait', '-n', ns, 'pod/hello', '--for=jsonpath={.status.phase}=Succeeded', '--timeout=90s');
    assert.equal((await kubectl('logs', '-n', ns, 'hello')).trim(), 'hello from hello');
    const pod = JSON.parse(await kubectl('get', '-n', ns, 'pod/hello', '-o', 'json')) as {
      spec: { nodeName: string };
      status: { podIP: string; containerStatuses: { imageID: string }[] };
    };
    // Placed by kube-scheduler, addressed from the pod CIDR, image resolved through the registry.
    assert.equal(pod.spec.nodeName, node.name);
    assert.match(pod.status.podIP, /^10\.244\.0\.\d+$/);
    assert.match(pod.status.containerStatuses[0]?.imageID ?? '', /@sha256:[0-9a-f]{64}$/);
    assert.ok(pod.status.containerStatuses[0]?.imageID.startsWith(`${node.registry}/chaperone/busybox@`));
  });

  test('a pod reaches a Service by its DNS name, and the apiserver through the kubernetes Service', async () => {
    await apply(
      httpdPod({
        name: 'web',
        namespace: ns,
        labels: { app: 'web' },
        image: node.testImage,
        page: 'served-by-web',
        declarePort: true,
      }),
    );
    await apply({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'web', namespace: ns },
      spec: { selector: { app: 'web' }, ports: [{ port: 80, targetPort: 8080 }] },
    });
    await kubectl('wait', '-n', ns, 'pod/web', '--for=condition=Ready', '--timeout=90s');
    const client = await runPod(
      'client',
      [
        `nslookup web.${ns}.svc.cluster.local ${node.clusterDnsIp} | tail -n +3`,
        // busybox's `wget -T` crashes (NULL write in its timeout path): `timeout` bounds it instead.
        `timeout 10 wget -q -O- http://web.${ns}.svc.cluster.local/`,
        // Through the kubernetes Service to the apiserver on the node's address (anonymous /livez).
        'timeout 10 wget -q -O- --no-check-certificate https://kubernetes.default.svc.cluster.local/livez; echo',
      ].join(' && '),
    );
    assert.equal(client.phase, 'Succeeded', client.logs);
    const serviceIp = (
      await kubectl('get', '-n', ns, 'service/web', '-o', 'jsonpath={.spec.clusterIP}')
    ).trim();
    assert.match(client.logs, new RegExp(`Address: ${serviceIp.replaceAll('.', '\\.')}`));
    assert.match(client.logs, /served-by-web/);
    assert.match(client.logs, /^ok$/m);
  });

  test('names outside the cluster do not resolve (cluster DNS forwards nowhere)', async () => {
    const client = await runPod('dns-outside', 'nslookup example.com; echo exit=$?');
    assert.equal(client.phase, 'Succeeded', client.logs);
    assert.match(client.logs, /exit=1/);
  });

  test("Chaperone's cli image runs from the local registry as its non-root user", async (t) => {
    const image = node.chaperoneImages.cli;
    if (!image) {
      t.skip('no Chaperone images: run `make images`');
      return;
    }
    await apply({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'chaperone-cli', namespace: ns },
      spec: {
        tolerations: [NODE_TOLERATION],
        restartPolicy: 'Never',
        containers: [
          { name: 'cli', image, args: ['--help'] },
          {
            name: 'whoami',
            image,
            command: ['/usr/local/bin/node', '-e', 'console.log(process.getuid(), process.env.HOME)'],
          },
        ],
      },
    });
    await kubectl(
      'wait',
      '-n',
      ns,
      'pod/chaperone-cli',
      '--for=jsonpath={.status.phase}=Succeeded',
      '--timeout=120s',
    );
    assert.match(await kubectl('logs', '-n', ns, 'chaperone-cli', '-c', 'cli'), /Usage: chaperone/);
    assert.equal(
      (await kubectl('logs', '-n', ns, 'chaperone-cli', '-c', 'whoami')).trim(),
      '65532 /home/nonroot',
    );
  });

  test('a NetworkPolicy drops a connection to another pod on this machine', async (t) => {
    if (!node.networkPolicies) {
      t.skip('no NetworkPolicy enforcer: build kube-router (test/env/tools/build-go-tools.sh kube-router)');
      return;
    }
    await apply(
      httpdPod({
        name: 'guarded',
        namespace: ns,
        labels: { app: 'guarded' },
        image: node.testImage,
        page: 'guarded',
      }),
    );
    await apply({
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: { name: 'only-allowed-clients', namespace: ns },
      spec: {
        podSelector: { matchLabels: { app: 'guarded' } },
        policyTypes: ['Ingress'],
        ingress: [{ from: [{ podSelector: { matchLabels: { access: 'allowed' } } }] }],
      },
    });
    await kubectl('wait', '-n', ns, 'pod/guarded', '--for=condition=Ready', '--timeout=90s');
    const ip = (await kubectl('get', '-n', ns, 'pod/guarded', '-o', 'jsonpath={.status.podIP}')).trim();
    // The enforcer has programmed the policy once its chain for it exists in the host's filter table.
    for (let i = 0; ; i++) {
      const { stdout } = await exec('iptables-save', ['-t', 'filter']);
      if (/^:KUBE-NWPLCY-/m.test(stdout)) break;
      if (i > 300) assert.fail('kube-router did not program the NetworkPolicy within 30 s');
      await new Promise((r) => setTimeout(r, 100));
    }
    // kube-router adds a new pod's address to the policy's source set only after it sees the pod
    // running, so the allowed client's first packets can race it and be rejected: both clients try
    // for up to 15 s. The allowed one must get through within that time, the other never.
    const script = [
      'end=$(( $(date +%s) + 15 ))',
      `until timeout 3 wget -q -O- http://${ip}:8080/; do`,
      '  [ "$(date +%s)" -ge "$end" ] && { echo exit=1; exit 0; }',
      '  sleep 0.5',
      'done',
      'echo exit=0',
    ].join('\n');
    const [allowed, denied] = await Promise.all([
      runPod('allowed-client', script, { access: 'allowed' }),
      runPod('other-client', script),
    ]);
    assert.equal(allowed.phase, 'Succeeded', allowed.logs);
    assert.match(allowed.logs, /guarded\nexit=0/);
    assert.equal(denied.phase, 'Succeeded', denied.logs);
    assert.doesNotMatch(denied.logs, /guarded/);
    assert.match(denied.logs, /exit=1$/m);
  });

  test('the safety net dropped nothing: no pod or Service traffic tried to leave the machine', async () => {
    assert.equal(await safetyNetDrops(), 0);
  });
});

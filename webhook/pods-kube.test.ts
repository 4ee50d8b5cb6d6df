// The pod webhook against a real kube-apiserver: registered by URL with a CA made here, it injects,
// stays idempotent under re-creation and reinvocation, refuses bypass-capable pods, leaves other
// namespaces alone, and with the webhook down opted-in namespaces fail closed while kube-system and
// the system namespace keep working.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { V1Container, V1Pod } from '@kubernetes/client-node';
import { testEnv } from '../test/env/index.ts';
import { ANNOTATIONS, CONTAINERS, LABELS } from './constants.ts';
import { rulesFromCaptureEnv } from './init/capture.ts';
import { agentPod, ordersPolicySpec } from './testing/fixtures.ts';
import { RUN_LABEL, WebhookHarness } from './testing/harness.ts';
import { type LateWebhook, startLateWebhook } from './testing/late-webhook.ts';
import { refusal } from './testing/refusal.ts';

const { kube } = await testEnv(['kube']);
const h = new WebhookHarness(kube);

const policySpec = ordersPolicySpec({ target: { transparent: true } });

function names(containers: V1Container[] | undefined): string[] {
  return (containers ?? []).map((c) => c.name);
}

let ns: string;

describe('pod webhook in kube-apiserver', () => {
  before(async () => {
    ns = await h.startInRecordedNamespace('agents', { orders: policySpec });
  });
  after(() => h.cleanup());

  it('creating a pod through the API returns it with the init container and native sidecar', async () => {
    const pod = await h.createPod(ns, agentPod('agent-1'));
    assert.deepEqual(names(pod.spec?.initContainers), [CONTAINERS.init, CONTAINERS.sidecar]);
    const sidecar = pod.spec!.initContainers![1]!;
    assert.equal(sidecar.restartPolicy, 'Always');
    assert.equal(sidecar.securityContext?.runAsUser, 15999);
    assert.equal(sidecar.securityContext?.readOnlyRootFilesystem, true);
    assert.equal(sidecar.startupProbe?.httpGet?.path, '/readyz');
    const init = pod.spec!.initContainers![0]!;
    assert.deepEqual(init.securityContext?.capabilities?.add, ['NET_ADMIN', 'NET_RAW']);
    const { ipv4: rules } = rulesFromCaptureEnv(
      init.env?.find((e) => e.name === 'CHAPERONE_CAPTURE')?.value ?? '',
    );
    assert.match(rules, /-d 10\.213\.0\.2\/32 -p tcp -m tcp --dport 5432 -j REDIRECT --to-ports 15432/);
    const agent = pod.spec!.containers[0]!;
    assert.deepEqual(
      agent.env
        ?.filter((e) => e.name.startsWith('PG') || e.name.startsWith('CHAPERONE_ORDERS'))
        .map((e) => [e.name, e.value]),
      [
        ['CHAPERONE_ORDERS_DB_HOST', '127.0.0.1'],
        ['CHAPERONE_ORDERS_DB_PORT', '15432'],
        ['PGHOST', '127.0.0.1'],
        ['PGPORT', '15432'],
      ],
    );
    assert.equal(agent.securityContext?.allowPrivilegeEscalation, false);
    assert.equal(pod.metadata?.annotations?.[ANNOTATIONS.policy], 'orders');
    const volumes = (pod.spec?.volumes ?? []).map((v) => v.name);
    assert.ok(volumes.includes('chaperone-cred-orders-db'));
    assert.ok(!agent.volumeMounts?.some((m) => m.name === 'chaperone-cred-orders-db'));
  });

  it('needs one mutating call per pod: the apiserver has no reason to re-invoke the webhook', async () => {
    const calls = async () => {
      const metric = await h
        .webhook!.server.registry.getSingleMetric('chaperone_webhook_admission_duration_seconds')!
        .get();
      return metric.values
        .filter(
          (v) =>
            (v as { metricName?: string }).metricName?.endsWith('_count') && v.labels.path === '/mutate/pods',
        )
        .reduce((sum, v) => sum + v.value, 0);
    };
    const before = await calls();
    await h.createPod(ns, agentPod('single-call'));
    assert.equal((await calls()) - before, 1);
  });

  it('creating the returned (injected) pod again does not inject twice', async () => {
    const first = await h.createPod(ns, agentPod('agent-2'));
    const again = structuredClone(first);
    again.metadata = {
      name: 'agent-2-again',
      labels: first.metadata!.labels!,
      annotations: first.metadata!.annotations!,
    };
    delete again.status;
    const second = await h.createPod(ns, again);
    assert.deepEqual(names(second.spec?.initContainers), [CONTAINERS.init, CONTAINERS.sidecar]);
    assert.deepEqual(second.spec?.initContainers, first.spec?.initContainers);
    assert.deepEqual(second.spec?.containers, first.spec?.containers);
    assert.deepEqual(second.spec?.volumes, first.spec?.volumes);
    assert.equal(second.spec!.containers[0]!.env!.filter((e) => e.name === 'PGHOST').length, 1);
  });

  it('a pod created with generateName is injected and admitted (the name is assigned between the webhooks)', async () => {
    const submitted = agentPod('unused');
    submitted.metadata = { ...submitted.metadata, generateName: 'agent-gen-' };
    delete submitted.metadata.name;
    const pod = await h.createPod(ns, submitted);
    assert.match(pod.metadata?.name ?? '', /^agent-gen-/);
    assert.deepEqual(names(pod.spec?.initContainers), [CONTAINERS.init, CONTAINERS.sidecar]);
  });

  describe('reinvocation', () => {
    let late: LateWebhook | undefined;
    before(async () => {
      // Another mutating webhook, called after ours, adds a container.
      late = await startLateWebhook(h, {
        name: 'late',
        objectSelector: { matchLabels: { late: 'true' } },
        reinvocationPolicy: 'Never',
        patch: (pod) =>
          pod.spec!.containers.some((c) => c.name === 'late-agent')
            ? []
            : [
                {
                  op: 'add',
                  path: '/spec/containers/-',
                  value: { name: 'late-agent', image: 'registry.example/late:1' },
                },
              ],
      });
    });
    after(() => late?.close());

    it('a later webhook adding a container gets it injected on reinvocation, without a second sidecar', async () => {
      const deadline = Date.now() + 30_000;
      let pod: V1Pod | undefined;
      for (let i = 0; ; i++) {
        pod = await h.createPod(
          ns,
          agentPod(`late-${i}`, (p) => Object.assign(p.metadata!.labels!, { late: 'true' })),
        );
        if (names(pod.spec?.containers).includes('late-agent') || Date.now() > deadline) break;
        await new Promise((r) => setTimeout(r, 200));
      }
      assert.deepEqual(names(pod!.spec?.containers), ['agent', 'late-agent']);
      assert.deepEqual(names(pod!.spec?.initContainers), [CONTAINERS.init, CONTAINERS.sidecar]);
      const lateAgent = pod!.spec!.containers[1]!;
      assert.ok(
        lateAgent.env?.some((e) => e.name === 'CHAPERONE_TOKEN_FILE'),
        'reinvoked: env injected into the late container',
      );
      assert.equal(lateAgent.securityContext?.allowPrivilegeEscalation, false);
    });
  });

  describe('refuses pods that could bypass capture, with clear messages', () => {
    const cases: Array<[string, (p: V1Pod) => void, RegExp]> = [
      ['hostNetwork', (p) => Object.assign(p.spec!, { hostNetwork: true }), /hostNetwork: true/],
      [
        'privileged',
        (p) => Object.assign(p.spec!.containers[0]!, { securityContext: { privileged: true } }),
        /container "agent": privileged: true/,
      ],
      [
        'net-admin',
        (p) =>
          Object.assign(p.spec!.containers[0]!, {
            securityContext: { capabilities: { add: ['NET_ADMIN'] } },
          }),
        /container "agent": capability NET_ADMIN added/,
      ],
      [
        'net-raw',
        (p) =>
          Object.assign(p.spec!.containers[0]!, {
            securityContext: { capabilities: { add: ['CAP_NET_RAW'] } },
          }),
        /capability NET_RAW added/,
      ],
      [
        'sidecar-uid',
        (p) => Object.assign(p.spec!.containers[0]!, { securityContext: { runAsUser: 15999 } }),
        /container "agent": runs as the sidecar's UID 15999/,
      ],
      [
        'sidecar-gid-pod-level',
        (p) => Object.assign(p.spec!.securityContext!, { runAsGroup: 15999 }),
        /runs as the sidecar's GID 15999/,
      ],
      [
        'no-run-as-user',
        (p) => {
          delete p.spec!.securityContext;
        },
        /\[unknown-user\] container "agent": runAsUser is not set, so admission cannot tell the image's user from root or the sidecar's UID/,
      ],
      [
        'init-escalation',
        (p) => {
          p.spec!.initContainers = [
            { name: 'setup', image: 'x', securityContext: { allowPrivilegeEscalation: true } },
          ];
        },
        /initContainer "setup": allowPrivilegeEscalation: true/,
      ],
      [
        'reads-credentials',
        (p) => {
          p.spec!.volumes = [{ name: 'creds', secret: { secretName: 'orders-db-credentials' } }];
        },
        /\[protected-secret\] volume "creds" mounts Secret orders-db-credentials, which a SessionPolicy of this namespace gives to the chaperone sidecar only/,
      ],
    ];
    for (const [name, mutate, expected] of cases) {
      it(name, async () => {
        const message = await refusal(h.createPod(ns, agentPod(`bypass-${name}`, mutate)));
        assert.match(
          message,
          /^403 admission webhook "pods\.chaperone\.dev" denied the request: chaperone: pod refused: it could bypass the session recording SessionPolicy orders requires/,
        );
        assert.match(message, expected);
      });
    }
  });

  it('a pod in a namespace that did not opt in is untouched', async () => {
    const plain = `plain-${h.id}`;
    await h.createNamespace(plain, {});
    const input = agentPod('untouched', (p) => {
      p.spec!.hostNetwork = true;
    });
    const pod = await h.createPod(plain, input);
    assert.equal(pod.spec?.initContainers, undefined);
    assert.equal(pod.metadata?.annotations, undefined);
    assert.deepEqual(names(pod.spec?.containers), ['agent']);
  });

  describe('policy selection', () => {
    it('refuses a pod no policy selects, unless the namespace allows unmatched pods', async () => {
      const message = await refusal(
        h.createPod(
          ns,
          agentPod('stray', (p) => (p.metadata!.labels = { app: 'other' })),
        ),
      );
      assert.match(message, /no SessionPolicy in namespace agents-\w+ selects this pod \(labels app=other\)/);
      const lenient = await h.recordedNamespace('lenient', { [LABELS.unmatched]: 'allow' });
      const pod = await h.createPod(
        lenient,
        agentPod('stray', (p) => (p.metadata!.labels = { app: 'other' })),
      );
      assert.equal(pod.spec?.initContainers, undefined);
    });

    it('refuses a pod several policies select, naming them', async () => {
      const two = await h.recordedNamespace('two');
      await h.createPolicy(two, 'first', policySpec);
      await h.createPolicy(two, 'second', { ...policySpec, podSelector: {} });
      const message = await refusal(h.createPod(two, agentPod('ambiguous')));
      assert.match(message, /SessionPolicies first, second in namespace two-\w+ all select this pod/);
    });

    it('refuses a pod whose policy is not Ready', async () => {
      const pending = await h.recordedNamespace('pending');
      await h.createPolicy(pending, 'unrendered', policySpec, false);
      assert.match(
        await refusal(h.createPod(pending, agentPod('early'))),
        /SessionPolicy unrendered is not Ready: the operator has not reconciled it yet/,
      );
      await h.setPolicyReady(pending, 'unrendered', 1, 'False');
      assert.match(
        await refusal(h.createPod(pending, agentPod('early'))),
        /SessionPolicy unrendered is not Ready: Ready is False \(RenderFailed\): Secret missing/,
      );
    });

    it('honours chaperone.dev/inject=false only where the namespace allows opt-out', async () => {
      const optOut = (p: V1Pod) => Object.assign(p.metadata!.labels!, { [LABELS.inject]: 'false' });
      const created = await h.kubectl(
        ['create', '-n', ns, '-o', 'json', '-f', '-'],
        agentPod('opt-out', optOut),
      );
      assert.ok(created.ok, created.out);
      assert.match(created.out, /Warning: chaperone: label chaperone\.dev\/inject=false ignored/);
      assert.match(created.out, /"name": "chaperone"/);
      const allowing = await h.recordedNamespace('optout', { [LABELS.allowOptOut]: 'true' });
      await h.createPolicy(allowing, 'orders', policySpec);
      const pod = await h.createPod(allowing, agentPod('opt-out', optOut));
      assert.equal(pod.spec?.initContainers, undefined);
    });
  });

  it('ephemeral containers get the same checks and hardening', async () => {
    const pod = await h.createPod(ns, agentPod('debug-target'));
    const withDebug = (sc: object) => {
      const next = structuredClone(pod);
      // Unconditional: the real scheduler and kubelet update the pod after creation, so any
      // resourceVersion read here may be stale by the time the replace arrives.
      delete next.metadata!.resourceVersion;
      next.spec!.ephemeralContainers = [{ name: 'debugger', image: 'busybox', securityContext: sc }];
      return next;
    };
    const message = await refusal(
      h.core.replaceNamespacedPodEphemeralcontainers({
        name: 'debug-target',
        namespace: ns,
        body: withDebug({ capabilities: { add: ['NET_ADMIN'] } }),
      }),
    );
    assert.match(message, /ephemeralContainer "debugger": capability NET_ADMIN added/);
    const updated = await h.core.replaceNamespacedPodEphemeralcontainers({
      name: 'debug-target',
      namespace: ns,
      body: withDebug({ runAsUser: 1000 }),
    });
    const debuggerContainer = updated.spec?.ephemeralContainers?.[0];
    assert.equal(debuggerContainer?.securityContext?.allowPrivilegeEscalation, false);
    assert.ok(debuggerContainer?.securityContext?.capabilities?.drop?.includes('SETUID'));
  });

  it('chaperone containers cannot be changed after injection', async () => {
    await h.createPod(ns, agentPod('immutable'));
    const swapped = await h.kubectl([
      'set',
      'image',
      '-n',
      ns,
      'pod/immutable',
      'chaperone=evil/forwarder:1',
    ]);
    assert.equal(swapped.ok, false);
    assert.match(
      swapped.out,
      /the chaperone-init and chaperone containers cannot be changed after injection/,
    );
    const agentImage = await h.kubectl([
      'set',
      'image',
      '-n',
      ns,
      'pod/immutable',
      'agent=registry.example/agent:2',
    ]);
    assert.ok(agentImage.ok, agentImage.out);
  });

  it('with the webhook down, opted-in namespaces fail closed; kube-system and the system namespace keep working', async () => {
    await h.stopWebhook();
    const message = await refusal(h.createPod(ns, agentPod('while-down')));
    assert.match(message, /failed calling webhook "pods\.chaperone\.dev"/);
    // Even labelled as opted in, the system namespaces are excluded by the namespaceSelector.
    const optIn = { [LABELS.recording]: 'enabled', [RUN_LABEL]: h.id };
    await h.mustKubectl([
      'label',
      'namespace',
      h.systemNamespace,
      ...Object.entries(optIn).map(([k, v]) => `${k}=${v}`),
      '--overwrite',
    ]);
    await h.mustKubectl([
      'label',
      'namespace',
      'kube-system',
      ...Object.entries(optIn).map(([k, v]) => `${k}=${v}`),
      '--overwrite',
    ]);
    try {
      for (const namespace of [h.systemNamespace, 'kube-system']) {
        const pod = await h.createPod(namespace, agentPod(`sys-${h.id}`));
        assert.equal(pod.spec?.initContainers, undefined);
        await h.core.deleteNamespacedPod({ namespace, name: `sys-${h.id}`, gracePeriodSeconds: 0 });
      }
    } finally {
      await h.kubectl(['label', 'namespace', 'kube-system', `${LABELS.recording}-`, `${RUN_LABEL}-`]);
    }
  });
});

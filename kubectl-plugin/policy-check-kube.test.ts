// `kubectl chaperone policy check` agrees with what the webhook does: for each golden pod of
// webhook/testdata/pods, the dry run reports the policy and the containers, volumes and env the
// webhook injects when the same pod is created for real; a bypass-capable pod is refused with the
// webhook's own message; a namespace that is not opted in leaves the pod untouched; a user who may
// not create pods is told so.
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { V1Pod } from '@kubernetes/client-node';
import { parse, stringify } from 'yaml';
import { testEnv } from '../test/env/index.ts';
import { WebhookHarness } from '../webhook/testing/harness.ts';
import { refusalOf } from '../webhook/testing/refusal.ts';
import type { CheckResult } from './policy-check.ts';
import { kubectlChaperone, pluginBinDir, userWithRules } from './testing/index.ts';

const { kube } = await testEnv(['kube']);
const PODS = join(import.meta.dirname, '..', 'webhook', 'testdata', 'pods');
/** Found by themselves: a new golden pod is checked without touching this file. */
const goldenInputs = (await readdir(PODS)).filter((f) => f.endsWith('.in.yaml'));

/** What admission decided, without what differs between two creations (generated SA token volume). */
function injectedShape(pod: V1Pod) {
  const generated = (name: string) => name.startsWith('kube-api-access-');
  const mounts = (c: { volumeMounts?: { name: string }[] }) => ({
    ...c,
    volumeMounts: (c.volumeMounts ?? []).filter((m) => !generated(m.name)),
  });
  // The dry run creates under a generated name (no clash with an existing pod), so the launcher
  // stamp cannot name the pod; everything else in it must agree.
  const launcher = (k: string, v: string) => {
    if (k !== 'chaperone.dev/launched-by') return v;
    const { via, ...rest } = JSON.parse(v) as { via: { name?: string } };
    const { name: _name, ...where } = via;
    return JSON.stringify({ ...rest, via: where });
  };
  return {
    annotations: Object.fromEntries(
      Object.entries(pod.metadata?.annotations ?? {})
        .filter(([k]) => k.startsWith('chaperone.dev/'))
        .map(([k, v]) => [k, launcher(k, v)]),
    ),
    initContainers: (pod.spec?.initContainers ?? []).map(mounts),
    containers: (pod.spec?.containers ?? []).map(mounts),
    volumes: (pod.spec?.volumes ?? []).filter((v) => !generated(v.name)),
  };
}

describe('kubectl chaperone policy check agrees with the webhook on the golden pods', {
  timeout: 180_000,
}, () => {
  const h = new WebhookHarness(kube);
  let ns: string;
  let dir: string;
  let bin: string;
  const admin = () => kube.kubeconfigPath;
  const check = (kubeconfig: string, args: string[]) =>
    kubectlChaperone(kube, bin, kubeconfig, ['policy', 'check', ...args]);

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'chaperone-policy-check-'));
    bin = await pluginBinDir(dir);
    await h.start();
    ns = await h.recordedNamespace('golden');
    const policy = parse(await readFile(join(PODS, 'policy.yaml'), 'utf8')) as {
      metadata: { name: string };
      spec: object;
    };
    await h.createPolicy(ns, policy.metadata.name, policy.spec);
    await h.core.createNamespacedServiceAccount({
      namespace: ns,
      body: { metadata: { name: 'payments-agent' } },
    });
    const probe = parse(await readFile(join(PODS, 'plain.in.yaml'), 'utf8')) as V1Pod;
    await h.waitUntilActive(ns, { ...probe, metadata: { ...probe.metadata, name: 'probe', namespace: ns } });
  });

  after(async () => {
    await h.cleanup();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('finds the golden pods', () => {
    assert.ok(goldenInputs.length >= 4, goldenInputs.join(', '));
  });

  for (const file of goldenInputs) {
    const name = basename(file, '.in.yaml');
    it(`${name}: the dry run reports what creating the pod injects`, async () => {
      const pod = parse(await readFile(join(PODS, file), 'utf8')) as V1Pod;
      pod.metadata = { ...pod.metadata, name, namespace: ns };
      const input = join(dir, file);
      await writeFile(input, stringify(pod));

      const r = await check(admin(), [input, '-n', ns, '--json']);
      assert.equal(r.code, 0, r.stderr + r.stdout);
      const result = JSON.parse(r.stdout) as CheckResult;
      // Created for real, read back as JSON as kubectl prints it (the dry run's form too).
      // --validate=false: the apiserver drops unknown fields (already-injected has one), as the dry run's client does.
      const created = JSON.parse(
        await h.mustKubectl(['create', '--validate=false', '-f', '-', '-o', 'json'], pod),
      ) as V1Pod;
      assert.equal(result.verdict, 'inject');
      assert.equal(result.policy, created.metadata?.annotations?.['chaperone.dev/policy']);
      assert.deepEqual(injectedShape(result.admitted!), injectedShape(created));

      // The same containers as the golden output (the webhook's own offline expectation).
      const golden = parse(await readFile(join(PODS, `${name}.out.yaml`), 'utf8')) as V1Pod;
      assert.deepEqual(
        (created.spec?.initContainers ?? []).map((c) => c.name),
        (golden.spec?.initContainers ?? []).map((c) => c.name),
      );

      const text = await check(admin(), [input, '-n', ns]);
      assert.equal(text.code, 0, text.stderr);
      assert.match(
        text.stdout,
        new RegExp(
          `^pod ${name} in namespace ${ns}: SessionPolicy ${result.policy} applies; admission would inject:\\n`,
        ),
      );
      for (const c of result.injected!.initContainers)
        assert.ok(text.stdout.includes(`  init container ${c.name} (${c.image})`));
    });
  }

  it('a pod that could bypass capture is refused with the webhook’s message (exit 3)', async () => {
    const pod = parse(await readFile(join(PODS, 'plain.in.yaml'), 'utf8')) as V1Pod;
    pod.metadata = { ...pod.metadata, name: 'host-net', namespace: ns };
    pod.spec!.hostNetwork = true;
    const input = join(dir, 'host-net.yaml');
    await writeFile(input, stringify(pod));
    const r = await check(admin(), [input, '-n', ns, '--json']);
    assert.equal(r.code, 3, r.stderr);
    const result = JSON.parse(r.stdout) as CheckResult;
    assert.equal(result.verdict, 'refused');
    const real =
      (await refusalOf(h.createPod(ns, pod)))?.message ??
      assert.fail('expected the apiserver to refuse the pod');
    assert.match(real, /hostNetwork/);
    assert.equal(result.message, real);
  });

  it('a namespace that is not opted in leaves the pod untouched; a Deployment is checked through its template', async () => {
    const plain = `plain-${h.id}`;
    await h.createNamespace(plain, {});
    const pod = parse(await readFile(join(PODS, 'plain.in.yaml'), 'utf8')) as V1Pod;
    const deployment = {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'agents' },
      spec: {
        selector: { matchLabels: pod.metadata!.labels },
        template: {
          metadata: { labels: pod.metadata!.labels },
          spec: { ...pod.spec, serviceAccountName: undefined },
        },
      },
    };
    const input = join(dir, 'deployment.yaml');
    await writeFile(input, stringify(deployment));
    const untouched = await check(admin(), [input, '-n', plain, '--json']);
    assert.equal(untouched.code, 0, untouched.stderr);
    assert.equal((JSON.parse(untouched.stdout) as CheckResult).verdict, 'untouched');
    const injected = await check(admin(), [input, '-n', ns, '--json']);
    assert.equal(injected.code, 0, injected.stderr);
    assert.equal((JSON.parse(injected.stdout) as CheckResult).verdict, 'inject');
  });

  it('a user who may not create pods is told which permission is missing (exit 4)', async () => {
    const nobody = await userWithRules(h.kc, kube, dir, ns, 'nobody', []);
    const r = await check(nobody, [join(PODS, 'plain.in.yaml'), '-n', ns]);
    assert.equal(r.code, 4, r.stderr);
    assert.equal(
      r.stderr,
      `kubectl-chaperone: forbidden: system:serviceaccount:${ns}:nobody lacks RBAC permission to create pods (API group core) in namespace ${ns}; ask a cluster admin for a Role in ${ns} with {apiGroups: [""], resources: ["pods"], verbs: ["create"]}\n`,
    );
  });
});

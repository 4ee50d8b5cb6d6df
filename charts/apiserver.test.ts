// Every object the chart renders, validated by a real kube-apiserver 1.34 (test env part `kube`):
// `kubectl apply --dry-run=server --validate=strict` runs the apiserver's own schema, defaulting,
// field validation (unknown fields are errors) and admission for each object, so it stands in for
// kubeconform with the 1.34 schemas and the CRDs' schemas. The CRDs are applied first (for real).
// The release namespace enforces the restricted Pod Security Standard (no warning allowed).
// The RBAC objects are applied for real too, and `kubectl auth can-i` checks what each account may do.
// cert-manager's Issuer/Certificate are left out: cert-manager's CRDs are not in the test apiserver.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { parseAllDocuments, stringify } from 'yaml';
import { testEnv } from '../test/env/index.ts';
import { TESTDATA } from './testing/golden.ts';
import { CHART, helm, template } from './testing/helm.ts';

/** Every object goes through a real apiserver's admission and schema checks, and nothing is stored. */
const SERVER_DRY_RUN = ['apply', '--server-side', '--field-manager=chart-test', '--dry-run=server'];

const exec = promisify(execFile);
const kube = (await testEnv(['kube'])).kube;
const id = randomBytes(3).toString('hex');
const release = `chart-${id}`;
// The production values copy the signing key into these namespaces; they must exist. So must the
// namespace of `helm test` (release `chaperone`): its hook objects are rendered in it.
const extraNamespaces = ['agents-a', 'agents-b', 'chaperone-injection-test'];

async function kubectl(args: string[], input?: string): Promise<{ ok: boolean; out: string }> {
  const child = exec(kube.kubectl, ['--kubeconfig', kube.kubeconfigPath, ...args], { maxBuffer: 64 << 20 });
  if (input !== undefined) child.child.stdin!.end(input);
  try {
    const { stdout, stderr } = await child;
    return { ok: true, out: stdout + stderr };
  } catch (error) {
    const e = error as { stdout?: string; stderr?: string };
    return { ok: false, out: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}

// biome-ignore lint/suspicious/noExplicitAny: rendered manifests
type Json = any;

async function render(valuesFile?: string): Promise<Json[]> {
  const out = await template(release, valuesFile ? [valuesFile] : []);
  assert.ok(out.ok, out.stderr);
  return parseAllDocuments(out.stdout)
    .map((d) => d.toJS())
    .filter((d) => d);
}

const isTestPod = (o: Json) => o.kind === 'Pod' && o.metadata.annotations?.['helm.sh/hook'] === 'test';

const cases = ['default', ...readdirSync(TESTDATA).filter((f) => f.endsWith('.values.yaml'))];

describe('the rendered chart in kube-apiserver 1.34', () => {
  before(async () => {
    for (const ns of [release, ...extraNamespaces]) {
      const made = await kubectl(['create', 'namespace', ns]);
      assert.ok(made.ok || /AlreadyExists/.test(made.out), made.out);
      // Pod Security Admission warns about every workload whose pods the level would refuse.
      const labelled = await kubectl([
        'label',
        'namespace',
        ns,
        '--overwrite',
        'pod-security.kubernetes.io/enforce=restricted',
        'pod-security.kubernetes.io/warn=restricted',
      ]);
      assert.ok(labelled.ok, labelled.out);
    }
    const crds = (await render()).filter((o) => o.kind === 'CustomResourceDefinition');
    assert.equal(crds.length, 2);
    const applied = await kubectl(
      ['apply', '--server-side', '--force-conflicts', '--field-manager', 'chart-test', '-f', '-'],
      crds.map((c) => stringify(c)).join('---\n'),
    );
    assert.ok(applied.ok, applied.out);
    const established = await kubectl([
      'wait',
      '--for=condition=Established',
      '--timeout=60s',
      ...crds.map((c) => `crd/${c.metadata.name}`),
    ]);
    assert.ok(established.ok, established.out);
  });

  after(async () => {
    await kubectl(['delete', 'namespace', release, ...extraNamespaces, '--wait=false', '--ignore-not-found']);
  });

  for (const file of cases) {
    it(`accepts every object: ${file}`, async () => {
      // The `helm test` pod is checked below, once its ServiceAccount exists (it is looked up).
      const objects = (await render(file === 'default' ? undefined : join(TESTDATA, file))).filter(
        (o) => !String(o.apiVersion).startsWith('cert-manager.io/') && !isTestPod(o),
      );
      assert.ok(objects.length > 20, `only ${objects.length} objects rendered`);
      const result = await kubectl(
        [...SERVER_DRY_RUN, '--validate=strict', '-o', 'name', '-f', '-'],
        objects.map((o) => stringify(o)).join('---\n'),
      );
      assert.ok(result.ok, result.out);
      // One line per object: nothing was skipped.
      const names = result.out.split('\n').filter((l) => /^[a-z0-9.-]+\/\S+$/.test(l));
      assert.equal(names.length, objects.length, result.out);
      assert.doesNotMatch(
        result.out,
        /violate PodSecurity/,
        'the pods meet the restricted Pod Security Standard',
      );
    });
  }

  it('grants each ServiceAccount what it needs and nothing more (RBAC applied, kubectl auth can-i)', async () => {
    const rbacKinds = new Set(['ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding']);
    const rbac = (await render()).filter((o) => rbacKinds.has(o.kind));
    const text = rbac.map((o) => stringify(o)).join('---\n');
    const applied = await kubectl(['apply', '--server-side', '--field-manager=chart-test', '-f', '-'], text);
    assert.ok(applied.ok, applied.out);
    try {
      const can = async (sa: string, verb: string, resource: string, namespace?: string) => {
        const args = [
          'auth',
          'can-i',
          verb,
          ...resource.split(' '),
          `--as=system:serviceaccount:${release}:${sa}`,
        ];
        const r = await kubectl([...args, ...(namespace ? ['-n', namespace] : ['--all-namespaces'])]);
        return r.out.trim().split('\n').at(-1) === 'yes';
      };
      const other = 'agents-a';
      const expectations: [string, string, string, string | undefined, boolean][] = [
        ['chaperone-webhook', 'get', 'pods', other, true],
        ['chaperone-webhook', 'list', 'pods', other, false],
        ['chaperone-webhook', 'watch', 'namespaces', undefined, true],
        ['chaperone-webhook', 'list', 'sessionpolicies.chaperone.dev', undefined, true],
        ['chaperone-webhook', 'get', 'secrets/chaperone-webhook-tls', release, true],
        ['chaperone-webhook', 'get', 'secrets/chaperone-webhook-ca', release, false],
        ['chaperone-webhook', 'get', 'secrets/anything', other, false],
        ['chaperone-webhook', 'get', 'services/kube-dns', 'kube-system', true],
        ['chaperone-webhook', 'get', 'services/other', 'kube-system', false],
        ['chaperone-webhook', 'create', 'configmaps', other, false],
        // The renderer registry (webhook/renderer-registry.ts): its own namespace only, no update/watch.
        ['chaperone-webhook', 'create', 'configmaps', release, true],
        ['chaperone-webhook', 'patch', 'configmaps', release, true],
        ['chaperone-webhook', 'delete', 'configmaps', release, true],
        ['chaperone-webhook', 'update', 'configmaps', release, false],
        ['chaperone-webhook', 'watch', 'configmaps', release, false],
        ['chaperone-webhook', 'delete', 'configmaps', other, false],
        ['chaperone-operator', 'create', 'configmaps', other, true],
        ['chaperone-operator', 'delete', 'networkpolicies.networking.k8s.io', other, true],
        ['chaperone-operator', 'patch', 'sessionpolicies.chaperone.dev --subresource=status', other, true],
        ['chaperone-operator', 'patch', 'sessionpolicies.chaperone.dev', other, false],
        ['chaperone-operator', 'get', 'secrets', other, true],
        ['chaperone-operator', 'list', 'secrets', other, false],
        ['chaperone-operator', 'create', 'secrets', release, true],
        // The SSH host key Secret of a policy with ssh targets lives in the policy's namespace.
        ['chaperone-operator', 'create', 'secrets', other, true],
        ['chaperone-operator', 'patch', 'secrets', other, false],
        ['chaperone-operator', 'delete', 'secrets', other, false],
        ['chaperone-operator', 'update', 'leases.coordination.k8s.io', release, true],
        ['chaperone-operator', 'update', 'leases.coordination.k8s.io', other, false],
        [
          'chaperone-operator',
          'patch',
          'mutatingwebhookconfigurations.admissionregistration.k8s.io',
          undefined,
          true,
        ],
        [
          'chaperone-operator',
          'create',
          'mutatingwebhookconfigurations.admissionregistration.k8s.io',
          undefined,
          false,
        ],
        ['chaperone-operator', 'get', 'pods', other, false],
      ];
      const wrong: string[] = [];
      for (const [sa, verb, resource, ns, want] of expectations) {
        if ((await can(sa, verb, resource, ns)) !== want)
          wrong.push(`${sa} ${verb} ${resource} in ${ns ?? 'all'}: expected ${want}`);
      }
      assert.deepEqual(wrong, []);
    } finally {
      await kubectl(['delete', '--ignore-not-found', '--wait=false', '-f', '-'], text);
    }
  });

  it('keeps the signing key already in the cluster (lookup): never regenerated on upgrade', async () => {
    const { privateKey } = generateKeyPairSync('ed25519');
    const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    const secret = {
      apiVersion: 'v1',
      kind: 'Secret',
      // As the first install left it: owned by release chaperone.
      metadata: {
        name: 'chaperone-signing-key',
        namespace: release,
        labels: { 'app.kubernetes.io/managed-by': 'Helm' },
        annotations: { 'meta.helm.sh/release-name': 'chaperone', 'meta.helm.sh/release-namespace': release },
      },
      stringData: { privateKey: pem },
    };
    const made = await kubectl(
      ['apply', '--server-side', '--field-manager=chart-test', '-f', '-'],
      stringify(secret),
    );
    assert.ok(made.ok, made.out);
    // --dry-run=server: helm reads the cluster for lookup, as `helm upgrade` does.
    const out = await helm([
      'template',
      'chaperone',
      CHART,
      '--namespace',
      release,
      '--dry-run=server',
      '--kubeconfig',
      kube.kubeconfigPath,
      '-f',
      join(TESTDATA, 'production.values.yaml'),
      // The CRDs applied above are not the release's (helm would refuse to adopt them).
      '--set',
      'crds.install=false',
    ]);
    assert.ok(out.ok, out.stderr);
    const secrets = parseAllDocuments(out.stdout)
      .map((d) => d.toJS())
      .filter((o) => o?.kind === 'Secret' && o.metadata.annotations?.['helm.sh/hook'] !== 'test');
    assert.equal(secrets.length, 3);
    for (const s of secrets)
      assert.equal(Buffer.from(s.data.privateKey, 'base64').toString(), pem, s.metadata.namespace);
  });

  it('accepts the `helm test` objects, created in order as helm does, and its pod', async () => {
    const hooks = (await render()).filter((o) => o.metadata.annotations?.['helm.sh/hook'] === 'test');
    const weight = (o: Json) => Number(o.metadata.annotations['helm.sh/hook-weight'] ?? 0);
    const [pods, others] = [hooks.filter(isTestPod), hooks.filter((o) => !isTestPod(o))];
    assert.equal(pods.length, 1);
    for (const o of others.sort((a, b) => weight(a) - weight(b))) {
      const made = await kubectl(
        ['apply', '--server-side', '--field-manager=chart-test', '-f', '-'],
        stringify(o),
      );
      assert.ok(made.ok, made.out);
    }
    const pod = await kubectl([...SERVER_DRY_RUN, '--validate=strict', '-f', '-'], stringify(pods[0]));
    assert.ok(pod.ok, pod.out);
    assert.doesNotMatch(pod.out, /violate PodSecurity/);
  });

  it('refuses a broken object (the check can fail)', async () => {
    const [deployment] = (await render()).filter((o) => o.kind === 'Deployment');
    deployment.spec.template.spec.containers[0].securityContext.capabilitiesTypo = { drop: ['ALL'] };
    const result = await kubectl([...SERVER_DRY_RUN, '--validate=strict', '-f', '-'], stringify(deployment));
    assert.equal(result.ok, false);
    assert.match(result.out, /capabilitiesTypo: field not declared in schema/);
    // And a pod that needs more than the restricted level is warned about.
    delete deployment.spec.template.spec.containers[0].securityContext.capabilitiesTypo;
    deployment.spec.template.spec.containers[0].securityContext.capabilities = { add: ['NET_ADMIN'] };
    const warned = await kubectl([...SERVER_DRY_RUN, '-f', '-'], stringify(deployment));
    assert.ok(warned.ok, warned.out);
    assert.match(warned.out, /would violate PodSecurity "restricted:latest"/);
  });
});

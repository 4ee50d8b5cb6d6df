import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { V1Pod } from '@kubernetes/client-node';
import fastJsonPatch from 'fast-json-patch';
import { stringify } from 'yaml';
import { ANNOTATIONS, CONTAINERS } from './constants.ts';
import {
  injectPod,
  perTargetVolumeName,
  renderPodPatch,
  stripInjection,
  withContainerDefaults,
  withVolumeDefaults,
} from './inject.ts';
import { podViolations } from './pod-checks.ts';
import { policySecretNames, type ResolvedPolicy, resolvePolicy } from './policy.ts';
import { agentPod, goldenPolicy, readYaml, testConfig } from './testing/fixtures.ts';
import { assertGolden } from './testing/golden.ts';

const options = { config: testConfig, dnsResolvers: testConfig.dns.resolvers };

function admit(raw: V1Pod, policy: ResolvedPolicy): V1Pod {
  const stripped = stripInjection(raw);
  const violations = podViolations(stripped, {
    sidecarUid: testConfig.sidecarUid,
    sidecarGid: testConfig.sidecarGid,
    requireAgentRunAsUser: true,
    protectedSecrets: policySecretNames(policy.spec),
  });
  assert.deepEqual(violations, []);
  return injectPod(stripped, policy, options, raw);
}

/** What the apiserver's defaulting adds to what the webhook injected. */
function withApiserverDefaults(pod: V1Pod): V1Pod {
  const out = structuredClone(pod);
  for (const c of out.spec!.initContainers ?? []) {
    c.terminationMessagePath ??= '/dev/termination-log';
    c.terminationMessagePolicy ??= 'File';
    c.imagePullPolicy ??= 'IfNotPresent';
    for (const probe of [c.startupProbe, c.livenessProbe]) {
      if (probe) {
        probe.successThreshold ??= 1;
        if (probe.httpGet) probe.httpGet.scheme ??= 'HTTP';
      }
    }
  }
  for (const v of out.spec!.volumes ?? []) {
    if (v.secret) v.secret.defaultMode ??= 420;
    if (v.configMap) v.configMap.defaultMode ??= 420;
    if (v.projected) v.projected.defaultMode ??= 420;
  }
  return out;
}

describe('pod injection (golden: pod in -> pod out)', async () => {
  const { resolved } = await goldenPolicy();

  for (const name of ['plain', 'job-template', 'existing-init']) {
    it(`${name}: renders the golden pod and patch`, async () => {
      const raw = await readYaml<V1Pod>(`pods/${name}.in.yaml`);
      const mutated = admit(raw, resolved);
      const patch = renderPodPatch(raw, mutated);
      await assertGolden(`pods/${name}.out.yaml`, stringify(mutated, { lineWidth: 0 }));
      await assertGolden(`pods/${name}.patch.json`, `${JSON.stringify(patch, null, 2)}\n`);
      // The patch applied to the raw pod gives exactly the mutated pod.
      const applied = fastJsonPatch.applyPatch(structuredClone(raw), patch, true, false).newDocument;
      assert.deepEqual(applied, mutated);
    });

    it(`${name}: injecting the injected (and apiserver-defaulted) pod changes nothing`, async () => {
      const raw = await readYaml<V1Pod>(`pods/${name}.in.yaml`);
      const once = withApiserverDefaults(admit(raw, resolved));
      assert.deepEqual(renderPodPatch(once, admit(once, resolved)), []);
    });
  }

  it('already-injected: a pod injected before (with defaults) comes out unchanged', async () => {
    const raw = await readYaml<V1Pod>('pods/already-injected.in.yaml');
    const mutated = admit(raw, resolved);
    await assertGolden('pods/already-injected.out.yaml', stringify(mutated, { lineWidth: 0 }));
    assert.deepEqual(renderPodPatch(raw, mutated), []);
    assert.equal(mutated.spec!.initContainers!.filter((c) => c.name === CONTAINERS.sidecar).length, 1);
  });

  it('keeps fields unknown to the client library (the patch works on the raw object)', async () => {
    const raw = await readYaml<V1Pod & { spec: { futureField?: string } }>('pods/plain.in.yaml');
    const mutated = admit(raw, resolved) as typeof raw;
    assert.equal(mutated.spec.futureField, 'kept-as-is');
    assert.ok(renderPodPatch(raw, mutated).every((op) => !op.path.includes('futureField')));
  });

  it('a re-injection replaces a forged sidecar and annotation', async () => {
    const raw = await readYaml<V1Pod>('pods/plain.in.yaml');
    const forged = structuredClone(raw);
    forged.spec!.initContainers = [
      { name: CONTAINERS.sidecar, image: 'evil/forwarder', restartPolicy: 'Always' } as never,
    ];
    forged.metadata!.annotations = { [ANNOTATIONS.status]: '{"policy":"none"}' };
    const mutated = admit(forged, resolved);
    assert.deepEqual(mutated, admit(raw, resolved));
  });

  it('names per-target volumes within 63 characters, stably', () => {
    const long = 'a'.repeat(63);
    const name = perTargetVolumeName('chaperone-cred-', long);
    assert.ok(name.length <= 63);
    assert.equal(name, perTargetVolumeName('chaperone-cred-', long));
    assert.equal(perTargetVolumeName('chaperone-cred-', 'db'), 'chaperone-cred-db');
  });

  it('a forged sidecar holding every rendered field plus extra ones is replaced, not kept', async () => {
    const raw = await readYaml<V1Pod>('pods/already-injected.in.yaml');
    // Compared with apiserver defaults filled in: a replaced item is rendered afresh, without them.
    const normal = (pod: V1Pod) => {
      const out = structuredClone(pod);
      out.spec!.initContainers = out.spec!.initContainers!.map((c) => withContainerDefaults(c));
      out.spec!.volumes = out.spec!.volumes!.map(withVolumeDefaults);
      return out;
    };
    const clean = normal(admit(raw, resolved));
    const forgeries: Array<[string, (c: Record<string, unknown>) => void]> = [
      ['command', (c) => Object.assign(c, { command: ['/bin/sh', '-c', 'cat /var/run/chaperone/*/*'] })],
      ['privileged', (c) => Object.assign(c.securityContext as object, { privileged: true })],
      ['envFrom', (c) => Object.assign(c, { envFrom: [{ secretRef: { name: 'recording-signing-key' } }] })],
      ['lifecycle', (c) => Object.assign(c, { lifecycle: { postStart: { exec: { command: ['sh'] } } } })],
      ['extra arg', (c) => (c.args as string[]).push('--insecure')],
      ['pull policy', (c) => Object.assign(c, { imagePullPolicy: 'Always' })],
    ];
    for (const [what, forge] of forgeries) {
      for (const name of [CONTAINERS.sidecar, CONTAINERS.init]) {
        const forged = structuredClone(raw);
        const c = forged.spec!.initContainers!.find((x) => x.name === name) as unknown as Record<
          string,
          unknown
        >;
        c.args ??= [];
        forge(c);
        assert.notDeepEqual(normal(forged), clean, `${what} on ${name}: the forgery changes the pod`);
        assert.deepEqual(normal(admit(forged, resolved)), clean, `${what} on ${name}`);
      }
    }
    const volume = structuredClone(raw);
    const key = volume.spec!.volumes!.find((v) => v.name === 'chaperone-signing-key')!;
    key.secret!.defaultMode = 0o666;
    assert.deepEqual(normal(admit(volume, resolved)), clean, 'a forged Secret volume mode');
  });

  it('sidecar-only Secret volumes are 0400 with an fsGroup (kubelet makes them 0440 root:fsGroup), 0444 without', async () => {
    const raw = await readYaml<V1Pod>('pods/plain.in.yaml');
    const modes = (pod: V1Pod) =>
      new Set(
        pod
          .spec!.volumes!.filter((v) => v.secret || v.name === 'chaperone-sa-token')
          .map((v) => (v.secret?.defaultMode ?? v.projected?.defaultMode)?.toString(8)),
      );
    assert.deepEqual(modes(admit(raw, resolved)), new Set(['444']));
    const withFsGroup = structuredClone(raw);
    withFsGroup.spec!.securityContext = { ...withFsGroup.spec!.securityContext, fsGroup: 2000 };
    assert.deepEqual(modes(admit(withFsGroup, resolved)), new Set(['400']));
  });

  it('mounts an introspection client secret into the sidecar only, and protects it from every other container', async () => {
    const raw = await readYaml<V1Pod>('pods/plain.in.yaml');
    const policy = structuredClone(resolved);
    const clientSecretSecret = { name: 'idp-introspection', key: 'clientSecret' };
    for (const issuer of ['https://idp-a.example', 'https://idp-b.example']) {
      policy.spec.identity.issuers.push({
        issuer,
        audiences: ['chaperone'],
        introspection: { clientId: 'chaperone', clientSecretSecret },
      } as (typeof policy.spec.identity.issuers)[number]);
    }
    assert.ok(policySecretNames(policy.spec).includes('idp-introspection'));
    const out = admit(raw, policy);
    const volumes = out.spec!.volumes!.filter((v) => v.secret?.secretName === 'idp-introspection');
    assert.deepEqual(
      volumes.map((v) => v.name),
      ['chaperone-introspect-idp-introspection'],
      'one volume however many issuers share the Secret',
    );
    const mounting = [...(out.spec!.initContainers ?? []), ...out.spec!.containers]
      .filter((c) => c.volumeMounts?.some((m) => m.name === 'chaperone-introspect-idp-introspection'))
      .map((c) => [
        c.name,
        c.volumeMounts!.find((m) => m.name === 'chaperone-introspect-idp-introspection')!.mountPath,
      ]);
    assert.deepEqual(mounting, [[CONTAINERS.sidecar, '/var/run/chaperone/introspection/idp-introspection']]);
  });
});

describe('kubernetes targets', () => {
  it('agents get KUBECONFIG and the sidecar-written kubeconfig read-only; the sidecar writes it; re-injection is stable', async () => {
    const { raw } = await goldenPolicy();
    const withKube = structuredClone(raw) as typeof raw & { spec: { targets: Record<string, unknown>[] } };
    withKube.spec.targets.push({
      name: 'kube',
      protocol: 'kubernetes',
      upstream: { host: 'kubernetes.default.svc', port: 443 },
      listenPort: 16443,
      credentialsSecret: { name: 'kube-token' },
    });
    const policy = resolvePolicy(withKube, 'agents');
    const pod = admit(agentPod('kube-agent'), policy);
    const agent = pod.spec!.containers.find((c) => c.name === 'agent')!;
    assert.equal(
      agent.env?.find((e) => e.name === 'KUBECONFIG')?.value,
      '/var/run/chaperone/kube/kube.kubeconfig',
    );
    assert.deepEqual(
      agent.volumeMounts?.find((m) => m.name === 'chaperone-kube'),
      { name: 'chaperone-kube', mountPath: '/var/run/chaperone/kube', readOnly: true },
    );
    const sidecar = pod.spec!.initContainers!.find((c) => c.name === CONTAINERS.sidecar)!;
    const mount = sidecar.volumeMounts?.find((m) => m.name === 'chaperone-kube');
    assert.equal(mount?.mountPath, '/var/run/chaperone/kube');
    assert.notEqual(mount?.readOnly, true);
    assert.deepEqual(pod.spec!.volumes?.find((v) => v.name === 'chaperone-kube')?.emptyDir, {
      sizeLimit: '1Mi',
    });
    // Injecting the injected pod again renders the same pod.
    assert.deepEqual(admit(structuredClone(pod), policy), pod);
  });
});

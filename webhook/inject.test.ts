import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { V1Pod } from '@kubernetes/client-node';
import fastJsonPatch from 'fast-json-patch';
import { stringify } from 'yaml';
import { ANNOTATIONS, CONTAINERS } from './constants.ts';
import { injectPod, isSubset, perTargetVolumeName, renderPodPatch, stripInjection } from './inject.ts';
import { podViolations } from './pod-checks.ts';
import { policySecretNames, type ResolvedPolicy } from './policy.ts';
import { goldenPolicy, readYaml, testConfig } from './testing/fixtures.ts';
import { assertGolden } from './testing/golden.ts';

const options = { config: testConfig, dnsResolvers: testConfig.dns.resolvers };

function admit(raw: V1Pod, policy: ResolvedPolicy): V1Pod {
  const stripped = stripInjection(raw);
  const violations = podViolations(stripped, {
    sidecarUid: testConfig.sidecarUid,
    sidecarGid: testConfig.sidecarGid,
    requireAgentRunAsUser: true,
    protectedSecrets: policySecretNames(policy.spec),
    policyName: policy.name,
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

  it('isSubset accepts added fields only', () => {
    assert.ok(isSubset({ a: 1, b: [{ c: 2 }] }, { a: 1, z: 0, b: [{ c: 2, d: 3 }] }));
    assert.ok(!isSubset({ a: 1 }, { a: 2 }));
    assert.ok(!isSubset({ b: [1, 2] }, { b: [1] }));
  });
});

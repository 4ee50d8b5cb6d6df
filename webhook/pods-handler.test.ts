// The pod handler's use of a (possibly stale) cache: it may only speed up injections; a skip or a
// refusal is always decided on the live API's answer.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AdmissionRequest } from './admission.ts';
import type { ClusterReader } from './cluster.ts';
import { LABELS } from './constants.ts';
import { mutatePod } from './handlers/pods.ts';
import type { RawSessionPolicy } from './policy.ts';
import { goldenPolicy, podCreateReview, readYaml, testConfig } from './testing/fixtures.ts';

function reader(
  labels: Record<string, string>,
  policies: RawSessionPolicy[],
): ClusterReader & { calls: number } {
  const r = {
    calls: 0,
    async namespaceLabels() {
      r.calls++;
      return labels;
    },
    async listSessionPolicies() {
      r.calls++;
      return policies;
    },
    async getSessionPolicy(_ns: string, name: string) {
      return policies.find((p) => p.metadata.name === name);
    },
    async secretExists() {
      return true;
    },
  };
  return r;
}

async function request(): Promise<AdmissionRequest> {
  return podCreateReview(
    await readYaml('pods/plain.in.yaml'),
    'system:serviceaccount:kube-system:replicaset-controller',
  );
}

const optedIn = { [LABELS.recording]: 'enabled' };

describe('pod handler with a cache', async () => {
  const { raw: policy } = await goldenPolicy();
  const deps = (cluster: ClusterReader, liveCluster?: ClusterReader) => ({
    cluster,
    ...(liveCluster ? { liveCluster } : {}),
    config: testConfig,
    dnsResolvers: () => testConfig.dns.resolvers,
  });

  it('injects from the cache alone when it has the answer', async () => {
    const live = reader(optedIn, [policy]);
    const decision = await mutatePod(await request(), deps(reader(optedIn, [policy]), live));
    assert.ok(decision.allowed && decision.patch && decision.patch.length > 0);
    assert.equal(live.calls, 0);
  });

  it('a cache that has not seen the namespace label yet cannot let the pod through untouched', async () => {
    const decision = await mutatePod(await request(), deps(reader({}, []), reader(optedIn, [policy])));
    assert.ok(decision.allowed && decision.patch && decision.patch.length > 0);
  });

  it('a cache that has not seen a new policy yet cannot refuse the pod', async () => {
    const decision = await mutatePod(await request(), deps(reader(optedIn, []), reader(optedIn, [policy])));
    assert.ok(decision.allowed && decision.patch && decision.patch.length > 0);
  });

  it('refuses when the live API agrees no policy applies', async () => {
    const decision = await mutatePod(await request(), deps(reader(optedIn, []), reader(optedIn, [])));
    assert.equal(decision.allowed, false);
  });
});

// Rollouts: the mutating call of a create on a replica with config A, the validating call on one with
// config B. Accepted only when A's rendering is published, fresh, and renders exactly this pod;
// every other case is refused as drift, naming both hashes.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { V1Pod } from '@kubernetes/client-node';
import fastJsonPatch from 'fast-json-patch';
import type { AdmissionRequest } from './admission.ts';
import type { ClusterReader } from './cluster.ts';
import { parseWebhookConfig } from './config.ts';
import { ANNOTATIONS, CONTAINERS, LABELS } from './constants.ts';
import { mutatePod, type PodHandlerDeps, validatePod } from './handlers/pods.ts';
import type { RawSessionPolicy } from './policy.ts';
import type { PublishedRendering, RendererLookup } from './renderer-registry.ts';
import { renderingHash, renderingOf } from './rendering.ts';
import { goldenPolicy, podCreateReview, readYaml, testConfig } from './testing/fixtures.ts';

const resolvers = testConfig.dns.resolvers;
const configA = testConfig;
const configB = parseWebhookConfig({ ...testConfig, resources: { sidecar: { limits: { memory: '1Gi' } } } });
const hashA = renderingHash(renderingOf(configA, resolvers));
const hashB = renderingHash(renderingOf(configB, resolvers));
const NOW = new Date('2026-11-30T04:00:00Z');

function reader(policies: RawSessionPolicy[]): ClusterReader {
  return {
    async namespaceLabels() {
      return { [LABELS.recording]: 'enabled' };
    },
    async listSessionPolicies() {
      return policies;
    },
    async getSessionPolicy(_ns, name) {
      return policies.find((p) => p.metadata.name === name);
    },
    async secretExists() {
      return true;
    },
  };
}

/** A registry holding exactly these renderings (keyed by their hash), counting lookups. */
function registry(entries: PublishedRendering[]): RendererLookup & { lookups: number } {
  const byHash = new Map(entries.map((e) => [renderingHash(e.rendering), e]));
  const r = {
    lookups: 0,
    async lookup(hash: string) {
      r.lookups++;
      return byHash.get(hash);
    },
  };
  return r;
}

function request(object: V1Pod): AdmissionRequest {
  return podCreateReview(object, 'system:serviceaccount:kube-system:replicaset-controller');
}

describe('validating a pod another replica rendered', async () => {
  const { raw: policy } = await goldenPolicy();
  const deps = (config: typeof configA, renderers?: RendererLookup): PodHandlerDeps => ({
    cluster: reader([policy]),
    config,
    dnsResolvers: () => resolvers,
    now: () => NOW,
    ...(renderers ? { renderers } : {}),
  });
  /** What the apiserver hands the validating webhooks after replica A mutated the pod. */
  const mutatedByA = async (): Promise<V1Pod> => {
    const raw = await readYaml<V1Pod>('pods/plain.in.yaml');
    const decision = await mutatePod(request(raw), deps(configA));
    assert.ok(decision.allowed && decision.patch);
    return fastJsonPatch.applyPatch(raw, decision.patch as fastJsonPatch.Operation[], false, false)
      .newDocument;
  };
  const published = (secondsAgo: number): PublishedRendering => ({
    rendering: renderingOf(configA, resolvers),
    seenAt: new Date(NOW.getTime() - secondsAgo * 1000),
  });

  it('the mutating call stamps its rendering hash (and a pod author cannot choose it)', async () => {
    const raw = await readYaml<V1Pod>('pods/plain.in.yaml');
    raw.metadata!.annotations = { ...raw.metadata?.annotations, [ANNOTATIONS.renderedWith]: hashA };
    const decision = await mutatePod(request(raw), deps(configB));
    assert.ok(decision.allowed && decision.patch);
    const pod = fastJsonPatch.applyPatch(
      raw,
      decision.patch as fastJsonPatch.Operation[],
      false,
      false,
    ).newDocument;
    assert.equal(pod.metadata?.annotations?.[ANNOTATIONS.renderedWith], hashB);
  });

  it('the same replica accepts its own rendering without asking the registry', async () => {
    const pod = await mutatedByA();
    const r = registry([]);
    assert.equal((await validatePod(request(pod), deps(configA, r))).allowed, true);
    assert.equal(r.lookups, 0);
  });

  it('accepts a fresh published rendering that renders exactly this pod', async () => {
    const pod = await mutatedByA();
    const decision = await validatePod(request(pod), deps(configB, registry([published(30)])));
    assert.equal(decision.allowed, true, JSON.stringify(decision));
  });

  it('refuses when the hash is not published, naming both hashes', async () => {
    const pod = await mutatedByA();
    const decision = await validatePod(request(pod), deps(configB, registry([])));
    assert.equal(decision.allowed, false);
    assert.match(
      decision.message ?? '',
      new RegExp(
        `rendered with ${hashA}, this replica renders with ${hashB}: no such rendering is published`,
      ),
    );
  });

  it('refuses without a registry', async () => {
    const decision = await validatePod(request(await mutatedByA()), deps(configB));
    assert.equal(decision.allowed, false);
  });

  it('refuses a rendering no live replica vouched for within the window', async () => {
    const decision = await validatePod(
      request(await mutatedByA()),
      deps(configB, registry([published(600)])),
    );
    assert.equal(decision.allowed, false);
    assert.match(decision.message ?? '', /no live replica renders with it since/);
  });

  it('refuses a pod tampered with after injection even though its hash names a fresh rendering', async () => {
    const pod = await mutatedByA();
    const sidecar = pod.spec!.initContainers!.find((c) => c.name === CONTAINERS.sidecar)!;
    sidecar.image = 'evil.example/chaperone:1';
    const decision = await validatePod(request(pod), deps(configB, registry([published(30)])));
    assert.equal(decision.allowed, false);
    assert.match(decision.message ?? '', /renders it differently too/);
    assert.match(decision.message ?? '', /\/spec\/initContainers/);
  });

  it('refuses B-rendered containers under A hash (a tamperer cannot mix renderings)', async () => {
    const own = await mutatePod(request(await readYaml<V1Pod>('pods/plain.in.yaml')), deps(configB));
    assert.ok(own.allowed && own.patch);
    const podB = fastJsonPatch.applyPatch(
      await readYaml<V1Pod>('pods/plain.in.yaml'),
      own.patch as fastJsonPatch.Operation[],
      false,
      false,
    ).newDocument;
    podB.metadata!.annotations![ANNOTATIONS.renderedWith] = hashA;
    // B renders B's containers, but the pod now claims A: B's own rendering differs only in the annotation.
    const decision = await validatePod(request(podB), deps(configB, registry([published(30)])));
    assert.equal(decision.allowed, false);
    assert.match(decision.message ?? '', /renders it differently too/);
  });

  it('refuses a hash that is not a hash without a lookup', async () => {
    const pod = await mutatedByA();
    pod.metadata!.annotations![ANNOTATIONS.renderedWith] = '../secrets/x';
    const r = registry([published(30)]);
    const decision = await validatePod(request(pod), deps(configB, r));
    assert.equal(decision.allowed, false);
    assert.equal(r.lookups, 0);
  });
});

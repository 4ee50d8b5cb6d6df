// The rendering cache of injectPod: it may only save work. Every cached injection must equal the one
// rendered afresh for the same inputs (policy object and generation, config, DNS resolvers, the
// pod's fsGroup), and the validating call still refuses a pod rendered for other inputs.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { V1Pod } from '@kubernetes/client-node';
import fastJsonPatch from 'fast-json-patch';
import { LAUNCHER_ENV } from './attribution/pod.ts';
import { deepFreeze } from './clone.ts';
import { parseWebhookConfig, type WebhookConfig } from './config.ts';
import { LABELS } from './constants.ts';
import { mutatePod, type PodHandlerDeps, validatePod } from './handlers/pods.ts';
import { injectPod, renderingCacheStats, stripInjection } from './inject.ts';
import { type RawSessionPolicy, type ResolvedPolicy, resolvePolicy } from './policy.ts';
import { goldenPolicy, podCreateReview, readYaml, testConfig } from './testing/fixtures.ts';

const configs: Array<[string, WebhookConfig]> = [
  ['test config', testConfig],
  [
    'other sidecar image',
    parseWebhookConfig({ ...testConfig, sidecarImage: 'ghcr.io/chaperone/chaperone:0.2.0' }),
  ],
  ['other init command', parseWebhookConfig({ ...testConfig, initCommand: ['/other-init'] })],
  ['other admin port', parseWebhookConfig({ ...testConfig, adminPort: 15999 })],
  [
    'other sidecar resources',
    parseWebhookConfig({ ...testConfig, resources: { sidecar: { limits: { memory: '1Gi' } } } }),
  ],
];
const resolverSets = [['10.96.0.10'], ['10.96.0.11'], ['10.96.0.11', '10.96.0.10']];
const fsGroups = [undefined, 1000, 2000];

type EditablePolicy = RawSessionPolicy & {
  spec: { targets: Array<{ listenPort: number }>; recording: { signingKeySecret: { name: string } } };
};

/** The pod handler's view of a cluster with one policy in an opted-in namespace. */
function handlerDeps(policy: RawSessionPolicy, config: WebhookConfig): PodHandlerDeps {
  return {
    cluster: {
      namespaceLabels: async () => ({ [LABELS.recording]: 'enabled' }),
      listSessionPolicies: async () => [policy],
      getSessionPolicy: async () => policy,
      secretExists: async () => true,
    },
    config,
    dnsResolvers: () => config.dns.resolvers,
  };
}

/** The same policy as a new object: what the informer hands out after a change. */
function variant(raw: RawSessionPolicy, change: (p: EditablePolicy) => void) {
  const copy = structuredClone(raw) as EditablePolicy;
  change(copy);
  return resolvePolicy(copy, 'agents');
}

/** A copy that is not frozen: injectPod renders it afresh, never from the cache. */
function uncached(policy: ResolvedPolicy): ResolvedPolicy {
  return structuredClone(policy);
}

function pod(base: V1Pod, fsGroup: number | undefined): V1Pod {
  const p = structuredClone(base);
  if (fsGroup !== undefined) p.spec!.securityContext = { ...p.spec!.securityContext, fsGroup };
  return p;
}

describe('injectPod rendering cache', async () => {
  const { raw, resolved } = await goldenPolicy();
  const policies: Array<[string, ResolvedPolicy]> = [
    ['golden', resolved],
    ['next generation', variant(raw, (p) => (p.metadata.generation = (p.metadata.generation ?? 1) + 1))],
    ['other listen port', variant(raw, (p) => (p.spec.targets[0]!.listenPort += 1))],
    ['other signing key', variant(raw, (p) => (p.spec.recording.signingKeySecret.name = 'other-key'))],
  ];
  const plain = await readYaml<V1Pod>('pods/plain.in.yaml');

  it('returns exactly the fresh rendering for every policy, config, resolvers and fsGroup', () => {
    const before = { ...renderingCacheStats };
    // Twice over every combination, interleaved: the second round is served from the cache.
    for (let round = 0; round < 2; round++) {
      for (const [policyName, policy] of policies) {
        for (const [configName, config] of configs) {
          for (const dnsResolvers of resolverSets) {
            for (const fsGroup of fsGroups) {
              const raw = pod(plain, fsGroup);
              const options = { config, dnsResolvers };
              const cached = injectPod(stripInjection(raw), policy, options, raw);
              const fresh = injectPod(stripInjection(raw), uncached(policy), options, raw);
              assert.deepEqual(
                cached,
                fresh,
                `policy ${policyName}, config ${configName}, resolvers ${dnsResolvers}, fsGroup ${fsGroup}, round ${round}`,
              );
            }
          }
        }
      }
    }
    const combinations = policies.length * configs.length * resolverSets.length * fsGroups.length;
    // fsGroup 1000 and 2000 render the same (0400 Secret files): one rendering serves both.
    assert.ok(
      renderingCacheStats.hits - before.hits >= combinations,
      `the second round hits the cache: ${JSON.stringify({ before, after: renderingCacheStats, combinations })}`,
    );
  });

  it('a config object changed in place is rendered anew, not served from the cache', () => {
    const config = parseWebhookConfig({ ...testConfig });
    const options = { config, dnsResolvers: testConfig.dns.resolvers };
    const first = injectPod(stripInjection(plain), resolved, options, plain);
    config.sidecarImage = 'ghcr.io/chaperone/chaperone:9.9.9';
    const second = injectPod(stripInjection(plain), resolved, options, plain);
    assert.notDeepEqual(first, second);
    assert.deepEqual(second, injectPod(stripInjection(plain), uncached(resolved), options, plain));
  });

  it('what the cache hands out cannot be changed through an injected pod', () => {
    const options = { config: testConfig, dnsResolvers: testConfig.dns.resolvers };
    const first = injectPod(stripInjection(plain), resolved, options, plain);
    first.spec!.initContainers![1]!.image = 'evil/forwarder';
    first.spec!.initContainers![0]!.env![0]!.value = '';
    first.spec!.volumes![0]!.name = 'renamed';
    const second = injectPod(stripInjection(plain), resolved, options, plain);
    assert.deepEqual(second, injectPod(stripInjection(plain), uncached(resolved), options, plain));
  });

  it('never writes into the admission object, nor into what the cache hands out', async () => {
    const deps = handlerDeps(raw, testConfig);
    const review = (object: V1Pod) => podCreateReview(deepFreeze(object), 'alice');
    const m = await mutatePod(review(plain), deps);
    assert.ok(m.allowed && m.patch);
    const injected = fastJsonPatch.applyPatch(structuredClone(plain), m.patch, true, false).newDocument;
    // The launcher's env on the sidecar (attribution): validation takes it out of a copy.
    assert.ok(JSON.stringify(injected).includes(LAUNCHER_ENV));
    assert.deepEqual(await validatePod(review(injected), deps), { allowed: true });
    // Writing into a frozen object throws (ESM is strict): both calls ran without one.
  });

  it('the validating call refuses a pod rendered for another config, generation or fsGroup', async () => {
    const review = (object: V1Pod) => podCreateReview(object, 'alice');
    const admitted = async (object: V1Pod, d: PodHandlerDeps) => {
      const m = await mutatePod(review(object), d);
      assert.ok(m.allowed);
      return fastJsonPatch.applyPatch(structuredClone(object), m.patch ?? [], true, false).newDocument;
    };
    const next = structuredClone(raw);
    next.metadata.generation = (next.metadata.generation ?? 1) + 1;
    if (next.status) next.status.observedGeneration = next.metadata.generation;
    const [, otherConfig] = configs[1]!;
    // Warm: each rendering is in the cache before the pod made with the other one is validated.
    const injected = await admitted(plain, handlerDeps(raw, testConfig));
    const otherInjected = await admitted(plain, handlerDeps(raw, otherConfig));
    assert.deepEqual(await validatePod(review(injected), handlerDeps(raw, testConfig)), { allowed: true });
    assert.equal((await validatePod(review(injected), handlerDeps(raw, otherConfig))).allowed, false);
    assert.equal((await validatePod(review(otherInjected), handlerDeps(raw, testConfig))).allowed, false);
    await admitted(plain, handlerDeps(next, testConfig));
    assert.equal((await validatePod(review(injected), handlerDeps(next, testConfig))).allowed, false);
    // The fsGroup added after injection changes the Secret volumes' mode we render (0444 -> 0400).
    const withFsGroup = pod(injected, 1000);
    await admitted(pod(plain, 1000), handlerDeps(raw, testConfig));
    assert.equal((await validatePod(review(withFsGroup), handlerDeps(raw, testConfig))).allowed, false);
  });
});

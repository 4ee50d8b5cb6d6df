// The rendering hash: stable across key order and replicas, blind to what never changes a pod, and
// changed by everything that does; what a registry ConfigMap holds counts only if it hashes to its name.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseWebhookConfig } from './config.ts';
import {
  configRenderingHash,
  configWithRendering,
  parseRendering,
  renderingHash,
  renderingJson,
  renderingOf,
} from './rendering.ts';
import { testConfig } from './testing/fixtures.ts';

const resolvers = ['10.96.0.10'];

describe('rendering hash', () => {
  it('is the same for the same config written in another key order', () => {
    const a = parseWebhookConfig({
      sidecarImage: 'img:1',
      resources: { sidecar: { limits: { memory: '1Gi' } } },
    });
    const b = parseWebhookConfig(
      JSON.parse(
        JSON.stringify({ resources: { sidecar: { limits: { memory: '1Gi' } } }, sidecarImage: 'img:1' }),
      ),
    );
    assert.equal(renderingHash(renderingOf(a, resolvers)), renderingHash(renderingOf(b, resolvers)));
    assert.match(renderingHash(renderingOf(a, resolvers)), /^[0-9a-f]{16}$/);
  });

  it('is pinned: the same bytes on every replica and every release (a change needs a reason)', () => {
    const config = parseWebhookConfig({ sidecarImage: 'img:1' });
    assert.equal(
      renderingJson(renderingOf(config, resolvers)),
      '{"adminPort":15090,"dnsResolvers":["10.96.0.10"],"initCommand":["chaperone-init"],"resources":{"init":{"limits":{"memory":"64Mi"},"requests":{"cpu":"10m","memory":"16Mi"}},"sidecar":{"limits":{"memory":"512Mi"},"requests":{"cpu":"50m","memory":"64Mi"}}},"sidecarGid":15999,"sidecarImage":"img:1","sidecarUid":15999,"spoolSizeLimit":"1Gi"}',
    );
  });

  it('ignores what does not change the rendering: listen, tls, logLevel, checks', () => {
    const base = renderingHash(renderingOf(testConfig, resolvers));
    for (const change of [
      { listen: { host: '127.0.0.1', port: 1 } },
      { logLevel: 'debug' },
      { tls: { source: 'files', certFile: '/a', keyFile: '/b' } },
      { requireAgentRunAsUser: false },
      { breakGlassGroups: ['admins'] },
      { informerCache: false },
    ]) {
      const other = parseWebhookConfig({ ...testConfig, ...change });
      assert.equal(renderingHash(renderingOf(other, resolvers)), base, JSON.stringify(change));
    }
  });

  it('changes with everything that changes the pod, the DNS resolvers and their order included', () => {
    const base = renderingHash(renderingOf(testConfig, resolvers));
    const changes = [
      { sidecarImage: 'other:1' },
      { initImage: 'other-init:1' },
      { imagePullPolicy: 'Always' },
      { sidecarUid: 2000 },
      { adminPort: 15091 },
      { spoolSizeLimit: '2Gi' },
      { resources: { sidecar: { limits: { memory: '1Gi' } } } },
      { templateControllers: ['system:serviceaccount:x:y'] },
    ];
    const seen = new Set([base]);
    for (const change of changes) {
      const hash = renderingHash(renderingOf(parseWebhookConfig({ ...testConfig, ...change }), resolvers));
      assert.ok(!seen.has(hash), JSON.stringify(change));
      seen.add(hash);
    }
    assert.notEqual(renderingHash(renderingOf(testConfig, ['10.96.0.11'])), base);
    assert.notEqual(
      renderingHash(renderingOf(testConfig, ['10.96.0.10', '10.96.0.11'])),
      renderingHash(renderingOf(testConfig, ['10.96.0.11', '10.96.0.10'])),
    );
  });

  it('a config given another replica rendering hashes to that rendering, keeping its own checks', () => {
    const other = parseWebhookConfig({
      ...testConfig,
      resources: { sidecar: { limits: { memory: '1Gi' } } },
    });
    const theirs = renderingOf(other, ['10.96.0.20']);
    const mine = parseWebhookConfig({ ...testConfig, initImage: undefined, requireAgentRunAsUser: false });
    const merged = configWithRendering(mine, theirs);
    assert.equal(configRenderingHash(merged, theirs.dnsResolvers), renderingHash(theirs));
    assert.equal(merged.requireAgentRunAsUser, false);
    assert.equal(merged.initImage, testConfig.initImage);
    const withoutInit = renderingOf(parseWebhookConfig({ sidecarImage: 'img:1' }), resolvers);
    assert.equal('initImage' in configWithRendering(testConfig, withoutInit), false);
  });

  it('a published rendering counts only if it parses and hashes to the name it is published under', () => {
    const rendering = renderingOf(testConfig, resolvers);
    const hash = renderingHash(rendering);
    assert.deepEqual(parseRendering(renderingJson(rendering), hash), rendering);
    const edited = renderingJson({ ...rendering, sidecarImage: 'evil:1' });
    assert.equal(parseRendering(edited, hash), undefined);
    assert.equal(parseRendering('{not json', hash), undefined);
    assert.equal(parseRendering(JSON.stringify({ ...rendering, extra: 1 }), hash), undefined);
  });
});

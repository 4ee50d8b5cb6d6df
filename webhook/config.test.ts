import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseWebhookConfig } from './config.ts';

describe('webhook config', () => {
  it('fills the defaults', () => {
    const config = parseWebhookConfig({ sidecarImage: 'img' });
    assert.equal(config.sidecarUid, 15999);
    assert.equal(config.systemNamespace, 'chaperone-system');
    assert.deepEqual(config.tls, { source: 'secret', name: 'chaperone-webhook-tls' });
    assert.equal(config.requireAgentRunAsUser, true);
    assert.deepEqual(config.resources.sidecar.requests, { cpu: '50m', memory: '64Mi' });
  });

  it('names every wrong field', () => {
    assert.throws(
      () =>
        parseWebhookConfig({
          sidecarUid: 0,
          tls: { source: 'files' },
          dns: { resolvers: ['resolver.local'] },
        }),
      (e: Error) =>
        /sidecarImage/.test(e.message) &&
        /sidecarUid/.test(e.message) &&
        /certFile/.test(e.message) &&
        /must be an IP address/.test(e.message),
    );
  });
});

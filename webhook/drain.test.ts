// Draining before a stop (webhook/server.ts `drain`): the apiserver keeps its connections to a
// replica that already left the Service's endpoints, so a stop that closed them with a request in
// flight would fail that admission. While draining, every answer closes its connection and /readyz
// fails; the drain ends once no request came for a quiet period. The real rollout is in
// test/chart/helm-node.test.ts.
import assert from 'node:assert/strict';
import { request } from 'node:https';
import type { AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import type { ClusterReader } from './cluster.ts';
import { buildWebhookServer } from './server.ts';
import { testConfig } from './testing/fixtures.ts';
import { createTestCa, issueServingCert } from './testing/pki.ts';

const unusedCluster: ClusterReader = {
  namespaceLabels: () => Promise.reject(new Error('not used')),
  listSessionPolicies: () => Promise.reject(new Error('not used')),
  getSessionPolicy: () => Promise.reject(new Error('not used')),
  secretExists: () => Promise.reject(new Error('not used')),
};

function get(port: number, path: string): Promise<{ status: number; connection: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, rejectUnauthorized: false }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, connection: res.headers.connection }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('draining before a stop', () => {
  it('answers with Connection: close and a failing /readyz, and ends after a quiet period', async () => {
    const ca = await createTestCa();
    const cert = await issueServingCert(ca);
    const server = await buildWebhookServer({
      config: testConfig,
      cluster: unusedCluster,
      tls: { cert: cert.certPem, key: cert.keyPem },
    });
    after(() => server.app.close());
    await server.app.listen({ host: '127.0.0.1', port: 0 });
    const port = (server.app.server.address() as AddressInfo).port;
    const before = await get(port, '/readyz');
    assert.equal(before.status, 200);
    assert.notEqual(before.connection, 'close');

    const started = Date.now();
    let drained = false;
    const draining = server.drain({ quietMs: 500, maxMs: 10_000 }).then(() => {
      drained = true;
    });
    // Requests keep the drain going; each is answered, and its connection closed.
    for (let i = 0; i < 4; i++) {
      const health = await get(port, '/healthz');
      assert.deepEqual(health, { status: 200, connection: 'close' });
      assert.equal(drained, false);
    }
    assert.equal((await get(port, '/readyz')).status, 503);
    await draining;
    // At least the quiet period after the last request, well before the maximum.
    const took = Date.now() - started;
    assert.ok(took >= 500 && took < 10_000, `drained in ${took} ms`);
  });
});

// Serving certificate from files (cert-manager style): a rotation on disk is served to new
// connections without a restart; a broken pair keeps the old certificate. The test waits for the
// watcher to hand over each pair (an event), never for a fixed time.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { connect } from 'node:tls';
import { until } from '../test/testing/until.ts';
import type { ClusterReader } from './cluster.ts';
import { buildWebhookServer } from './server.ts';
import { testConfig } from './testing/fixtures.ts';
import { createTestCa, issueServingCert } from './testing/pki.ts';
import { type TlsMaterial, watchFileTls } from './tls.ts';

const unusedCluster: ClusterReader = {
  namespaceLabels: () => Promise.reject(new Error('not used')),
  listSessionPolicies: () => Promise.reject(new Error('not used')),
  getSessionPolicy: () => Promise.reject(new Error('not used')),
  secretExists: () => Promise.reject(new Error('not used')),
};

function fingerprint(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
      resolve(socket.getPeerCertificate().fingerprint256.replaceAll(':', '').toLowerCase());
      socket.end();
    });
    socket.on('error', reject);
  });
}

describe('TLS from files', () => {
  it('swaps a rotated certificate live and keeps the old one when the new pair is broken', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'chaperone-tls-'));
    after(() => rm(dir, { recursive: true, force: true }));
    const certFile = join(dir, 'tls.crt');
    const keyFile = join(dir, 'tls.key');
    const ca = await createTestCa();
    const first = await issueServingCert(ca);
    await writeFile(certFile, first.certPem);
    await writeFile(keyFile, first.keyPem);

    let server: Awaited<ReturnType<typeof buildWebhookServer>> | undefined;
    const handed: TlsMaterial[] = [];
    const source = watchFileTls(certFile, keyFile, 1, (m) => {
      server?.setTls(m);
      handed.push(m);
    });
    after(() => source.stop());
    server = await buildWebhookServer({
      config: testConfig,
      cluster: unusedCluster,
      tls: await source.initial,
    });
    after(() => server?.app.close());
    await server.app.listen({ host: '127.0.0.1', port: 0 });
    const port = (server.app.server.address() as AddressInfo).port;
    assert.equal(await fingerprint(port), first.fingerprint);

    const second = await issueServingCert(ca);
    await writeFile(keyFile, second.keyPem);
    await writeFile(certFile, second.certPem);
    await until('the rotated pair handed to the server', () =>
      handed.some((m) => m.cert === second.certPem && m.key === second.keyPem),
    );
    assert.equal(await fingerprint(port), second.fingerprint, 'the rotated certificate is served');

    // A certificate without its key (half-written rotation): refused, the current one stays.
    const third = await issueServingCert(ca);
    await writeFile(certFile, third.certPem);
    // The server has been offered the broken pair (setTls runs synchronously in the handler).
    await until('the broken pair handed to the server', () =>
      handed.some((m) => m.cert === third.certPem && m.key === second.keyPem),
    );
    assert.equal(await fingerprint(port), second.fingerprint);
  });
});

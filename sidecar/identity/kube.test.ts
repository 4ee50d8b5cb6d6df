// Service-account tokens from a real kube-apiserver (TokenRequest), verified through the
// apiserver's own OIDC discovery and JWKS over HTTPS with the cluster CA, as in a pod.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { CoreV1Api } from '@kubernetes/client-node';
import { pino } from 'pino';
import { testEnv } from '../../test/env/index.ts';
import { kubeConfigFor } from '../../test/env/kube.ts';
import type { IdentityError } from './errors.ts';
import { createIdentityVerifier } from './verifier.ts';

const { kube } = await testEnv(['kube']);
const core = kubeConfigFor(kube).makeApiClient(CoreV1Api);
const logger = pino({ level: 'silent' });

const dir = await mkdtemp(join(tmpdir(), 'chaperone-kube-identity-'));
after(() => rm(dir, { recursive: true, force: true }));
const caFile = join(dir, 'ca.crt');
await writeFile(caFile, kube.caPem);

const namespace = `identity-${randomBytes(4).toString('hex')}`;
await core.createNamespace({ body: { metadata: { name: namespace } } });
after(() => core.deleteNamespace({ name: namespace }).catch(() => undefined));

async function serviceAccountToken(name: string, audience: string): Promise<string> {
  await core
    .createNamespacedServiceAccount({ namespace, body: { metadata: { name } } })
    .catch((err: { code?: number }) => {
      if (err.code !== 409) throw err;
    });
  const res = await core.createNamespacedServiceAccountToken({
    name,
    namespace,
    body: { spec: { audiences: [audience], expirationSeconds: 600 } },
  });
  assert.ok(res.status?.token, 'TokenRequest returned no token');
  return res.status.token;
}

describe('identity verifier with Kubernetes service-account tokens', () => {
  const verifier = createIdentityVerifier(
    {
      issuers: [{ issuer: kube.serviceAccountIssuer, audiences: ['chaperone'], kubernetes: true, caFile }],
      tokenRequired: true,
      deniedSubjects: [`system:serviceaccount:${namespace}:intruder`],
      clockSkewSeconds: 30,
    },
    { pod: { serviceAccount: 'agent', namespace }, logger },
  );
  after(() => verifier.close());

  it('accepts a projected-style token with audience chaperone', async () => {
    const token = await serviceAccountToken('agent', 'chaperone');
    const id = await verifier.authenticate(token, { source: '127.0.0.1:40000' });
    assert.equal(id.subject, `system:serviceaccount:${namespace}:agent`);
    assert.equal(id.issuer, kube.serviceAccountIssuer);
    const claims = id.claims?.['kubernetes.io'] as { namespace: string; serviceaccount: { name: string } };
    assert.equal(claims.namespace, namespace);
    assert.equal(claims.serviceaccount.name, 'agent');
  });

  it('rejects a token for the apiserver audience', async () => {
    const token = await serviceAccountToken('agent', 'https://kubernetes.default.svc');
    await assert.rejects(verifier.authenticate(token, {}), (err: IdentityError) => err.code === 'audience');
  });

  it('refuses a denied service account', async () => {
    const token = await serviceAccountToken('intruder', 'chaperone');
    await assert.rejects(
      verifier.authenticate(token, {}),
      (err: IdentityError) =>
        err.code === 'denied' && err.subject === `system:serviceaccount:${namespace}:intruder`,
    );
  });
});

// Kubernetes tokens beyond their signature, against the real kube-apiserver and PostgreSQL through
// the sidecar: tokens bound to another pod or service account are refused; TokenReview refuses a
// token whose service account was deleted and recreated; a legacy Secret-based token is accepted,
// and once its Secret is deleted the running session ends within the re-check interval (recorded
// as identity.revoked) and the next session is refused.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CoreV1Api, type V1Pod } from '@kubernetes/client-node';
import pg from 'pg';
import { pino } from 'pino';
import { testEnv } from '../../test/env/index.ts';
import { kubeConfigFor } from '../../test/env/kube.ts';
import { kinds, startHarness } from '../postgres/testing/harness.ts';
import type { IdentityError } from './errors.ts';
import { createIdentityVerifier } from './verifier.ts';

const { kube, postgres } = await testEnv(['kube', 'postgres']);
const kc = kubeConfigFor(kube);
const core = kc.makeApiClient(CoreV1Api);
const logger = pino({ level: 'silent' });
const dir = await mkdtemp(join(tmpdir(), 'chaperone-kube-liveness-'));
after(() => rm(dir, { recursive: true, force: true }));
const caFile = join(dir, 'ca.crt');
await writeFile(caFile, kube.caPem);

const namespace = `liveness-${randomBytes(4).toString('hex')}`;
await core.createNamespace({ body: { metadata: { name: namespace } } });
after(() => core.deleteNamespace({ name: namespace }).catch(() => undefined));

async function serviceAccount(name: string): Promise<void> {
  await core.createNamespacedServiceAccount({ namespace, body: { metadata: { name } } }).catch((err) => {
    if ((err as { code?: number }).code !== 409) throw err;
  });
}

async function token(sa: string, pod?: V1Pod): Promise<string> {
  await serviceAccount(sa);
  const res = await core.createNamespacedServiceAccountToken({
    name: sa,
    namespace,
    body: {
      spec: {
        audiences: ['chaperone'],
        expirationSeconds: 600,
        ...(pod
          ? {
              boundObjectRef: {
                apiVersion: 'v1',
                kind: 'Pod',
                name: pod.metadata!.name!,
                uid: pod.metadata!.uid!,
              },
            }
          : {}),
      },
    },
  });
  assert.ok(res.status?.token, 'TokenRequest returned no token');
  return res.status.token;
}

/** A pod object (never run: no kubelet needed) for tokens bound to a pod. */
async function podObject(name: string, sa: string): Promise<V1Pod> {
  await serviceAccount(sa);
  return core.createNamespacedPod({
    namespace,
    body: {
      metadata: { name },
      spec: { serviceAccountName: sa, containers: [{ name: 'agent', image: 'registry.invalid/agent:1' }] },
    },
  });
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, ms = 30_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const issuer = { issuer: kube.serviceAccountIssuer, audiences: ['chaperone'], kubernetes: true, caFile };
const base = { issuers: [issuer], tokenRequired: true, deniedSubjects: [], clockSkewSeconds: 5 };

describe('Kubernetes token binding and TokenReview', () => {
  let ownPod: V1Pod;
  let otherPod: V1Pod;
  before(async () => {
    ownPod = await podObject('agent-0', 'agent');
    otherPod = await podObject('other-0', 'agent');
  });

  it('refuses a token of another service account, or bound to another pod; accepts its own pod', async () => {
    const pod = { namespace, serviceAccount: 'agent', pod: 'agent-0', podUid: ownPod.metadata!.uid! };
    const v = createIdentityVerifier({ ...base, kubernetesTokenBinding: 'serviceAccount' }, { pod, logger });
    after(() => v.close());
    await assert.rejects(
      v.authenticate(await token('intruder'), {}),
      (e: IdentityError) => e.code === 'binding' && /token of service account .*\/intruder/.test(e.message),
    );
    await assert.rejects(
      v.authenticate(await token('agent', otherPod), {}),
      (e: IdentityError) => e.code === 'binding' && /bound to pod other-0/.test(e.message),
    );
    assert.equal(
      (await v.authenticate(await token('agent', ownPod), {})).subject,
      `system:serviceaccount:${namespace}:agent`,
    );
    // pod mode: a token not bound to any pod is refused too; any: the policy allows foreign tokens.
    const strict = createIdentityVerifier({ ...base, kubernetesTokenBinding: 'pod' }, { pod, logger });
    after(() => strict.close());
    await assert.rejects(
      strict.authenticate(await token('agent'), {}),
      (e: IdentityError) => e.code === 'binding',
    );
    const any = createIdentityVerifier({ ...base, kubernetesTokenBinding: 'any' }, { pod, logger });
    after(() => any.close());
    assert.match((await any.authenticate(await token('intruder'), {})).subject, /:intruder$/);
  });

  it('TokenReview refuses a token whose service account was deleted and recreated', async () => {
    await serviceAccount('rotating');
    const pod = { namespace, serviceAccount: 'rotating' };
    const v = createIdentityVerifier(
      { ...base, liveness: { tokenReview: true, recheckSeconds: 0 } },
      { pod, logger, kubeConfig: () => kc },
    );
    after(() => v.close());
    const t = await token('rotating');
    const id = await v.authenticate(t, {});
    assert.equal(id.attribution?.token?.reviewedAs, `system:serviceaccount:${namespace}:rotating`);
    await core.deleteNamespacedServiceAccount({ namespace, name: 'rotating' });
    await serviceAccount('rotating');
    // The signature still verifies against the JWKS; only the apiserver knows the uid changed (it
    // caches successful token authentications for 10 s, so the refusal may take that long).
    const err = await until('TokenReview refuses the token', () =>
      v.authenticate(t, {}).then(
        () => undefined,
        (e: IdentityError) => e,
      ),
    );
    assert.equal(err.code, 'revoked');
    assert.match(err.message, /no longer accepts/);
  });
});

describe('offboarding list in a ConfigMap', () => {
  it('refuses a service account listed there, naming the date, and follows updates of the list', async () => {
    await core.createNamespacedConfigMap({
      namespace,
      body: { metadata: { name: 'offboarded' }, data: { offboarded: 'someone-else 2026-01-01\n' } },
    });
    const pod = { namespace, serviceAccount: 'deployer' };
    const v = createIdentityVerifier(
      {
        ...base,
        offboarding: {
          configMap: { name: 'offboarded', key: 'offboarded' },
          action: 'deny',
          refreshSeconds: 3600,
        },
        liveness: { tokenReview: false, recheckSeconds: 1 },
      },
      { pod, logger, kubeConfig: () => kc },
    );
    after(() => v.close());
    const t = await token('deployer');
    const id = await v.authenticate(t, {});
    const revoked = new Promise<IdentityError>((resolve) => {
      const stop = v.watch(id, (e) => {
        stop();
        resolve(e);
      });
    });
    await core.replaceNamespacedConfigMap({
      namespace,
      name: 'offboarded',
      body: {
        metadata: { name: 'offboarded' },
        data: { offboarded: `system:serviceaccount:${namespace}:deployer 2026-01-01\n` },
      },
    });
    // The running identity is re-checked (the list re-read first) and revoked.
    const e = await revoked;
    assert.equal(e.code, 'offboarded');
    assert.match(
      e.message,
      new RegExp(
        `token of system:serviceaccount:${namespace}:deployer used \\d+ days after .* offboarding on 2026-01-01`,
      ),
    );
    await assert.rejects(v.authenticate(t, {}), (err: IdentityError) => err.code === 'offboarded');
  });
});

describe('legacy Secret-based token: accepted, then its Secret is deleted', () => {
  it('ends the running session within the re-check interval and refuses the next one', async () => {
    await serviceAccount('legacy-agent');
    await core.createNamespacedSecret({
      namespace,
      body: {
        metadata: {
          name: 'legacy-agent-token',
          annotations: { 'kubernetes.io/service-account.name': 'legacy-agent' },
        },
        type: 'kubernetes.io/service-account-token',
      },
    });
    const legacy = await until('token controller fills the Secret', async () => {
      const s = await core.readNamespacedSecret({ namespace, name: 'legacy-agent-token' });
      const t = s.data?.token;
      return t ? Buffer.from(t, 'base64').toString('utf8') : undefined;
    });
    const h = await startHarness(postgres, {
      config: {
        identity: {
          issuers: [issuer],
          legacyServiceAccountTokens: true,
          liveness: { tokenReview: true, recheckSeconds: 1 },
        },
      },
      sidecar: {
        pod: { namespace, serviceAccount: 'legacy-agent', pod: 'legacy-0' },
        env: { ...process.env, KUBECONFIG: kube.kubeconfigPath },
      },
    });
    const client = new pg.Client(h.clientConfig(legacy));
    // An early failure must not leave the session open: the harness would wait for it on close.
    after(async () => {
      await client.end().catch(() => undefined);
      await h.close();
    });
    const ended = new Promise<Error>((resolve) => client.on('error', resolve));
    await client.connect();
    assert.equal((await client.query('SELECT 2 AS two')).rows[0].two, 2);
    const deletedAt = Date.now();
    await core.deleteNamespacedSecret({ namespace, name: 'legacy-agent-token' });
    const err = await ended;
    const tookMs = Date.now() - deletedAt;
    assert.match(err.message, /session ended, identity no longer valid: the apiserver no longer accepts/);
    // Re-check every 1 s, plus the apiserver's 10 s cache of successful token authentications.
    assert.ok(tookMs < 14_000, `ended ${tookMs} ms after the Secret was deleted (re-check every 1 s)`);
    await client.end().catch(() => undefined);
    const events = await h.waitForSession((evs) => kinds(evs, 'identity.revoked').length > 0);
    const header = kinds(events, 'session.start')[0]!.payload as { identity: { subject: string } };
    assert.equal(header.identity.subject, `system:serviceaccount:${namespace}:legacy-agent`);
    assert.equal(kinds(events, 'identity.revoked')[0]!.payload.code, 'revoked');
    const again = new pg.Client(h.clientConfig(legacy));
    await assert.rejects(again.connect(), /no longer accepts this service-account token/);
    await again.end().catch(() => undefined);
  });
});

// Smoke tests of the real control plane: CRDs, service-account tokens and their OIDC discovery,
// kubectl and helm, and the controllers (namespace deletion, garbage collection).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import {
  AdmissionregistrationV1Api,
  ApiException,
  ApiextensionsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  type KubeConfig,
  type V1CustomResourceDefinition,
} from '@kubernetes/client-node';
import { createRemoteJWKSet, customFetch as joseCustomFetch, jwtVerify } from 'jose';
import * as oidc from 'openid-client';
import { testEnv } from './index.ts';
import { type KubeControlPlane, kubeConfigFor, startKubeControlPlane } from './kube.ts';
import { generateControlPlanePki } from './kube-certs.ts';
import { fetchTrusting, httpsRequest } from './kube-fetch.ts';

const run = promisify(execFile);

const startedAt = performance.now();
const { kube } = await testEnv(['kube']);
console.log(`[kube.test] control plane ready in ${Math.round(performance.now() - startedAt)} ms`);

const kc = kubeConfigFor(kube);
const core = kc.makeApiClient(CoreV1Api);

const suffix = () => randomBytes(4).toString('hex');

function isNotFound(error: unknown): boolean {
  return error instanceof ApiException && error.code === 404;
}

/** Polls `check` until it returns a value other than undefined. */
async function eventually<T>(
  what: string,
  check: () => Promise<T | undefined>,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(100);
  }
}

async function gone(read: () => Promise<unknown>): Promise<true | undefined> {
  try {
    await read();
    return undefined;
  } catch (error) {
    if (isNotFound(error)) return true;
    throw error;
  }
}

async function createNamespace(prefix: string): Promise<string> {
  const name = `${prefix}-${suffix()}`;
  await core.createNamespace({ body: { metadata: { name } } });
  return name;
}

describe('kube control plane', () => {
  it('serves a CustomResourceDefinition once Established, and its instances', async () => {
    const namespace = await createNamespace('crd');
    const group = `smoke-${suffix()}.test.chaperone.dev`;
    const crd: V1CustomResourceDefinition = {
      metadata: { name: `widgets.${group}` },
      spec: {
        group,
        scope: 'Namespaced',
        names: { plural: 'widgets', singular: 'widget', kind: 'Widget', listKind: 'WidgetList' },
        versions: [
          {
            name: 'v1',
            served: true,
            storage: true,
            schema: {
              openAPIV3Schema: {
                type: 'object',
                properties: {
                  spec: { type: 'object', properties: { size: { type: 'integer', minimum: 1 } } },
                },
              },
            },
          },
        ],
      },
    };
    const extensions = kc.makeApiClient(ApiextensionsV1Api);
    await extensions.createCustomResourceDefinition({ body: crd });
    await eventually('the CRD to become Established', async () => {
      const current = await extensions.readCustomResourceDefinition({ name: crd.metadata!.name! });
      const established = current.status?.conditions?.find((c) => c.type === 'Established');
      return established?.status === 'True' ? true : undefined;
    });

    const objects = kc.makeApiClient(CustomObjectsApi);
    const target = { group, version: 'v1', namespace, plural: 'widgets' };
    await objects.createNamespacedCustomObject({
      ...target,
      body: { apiVersion: `${group}/v1`, kind: 'Widget', metadata: { name: 'w1' }, spec: { size: 3 } },
    });
    const read = (await objects.getNamespacedCustomObject({ ...target, name: 'w1' })) as {
      spec: { size: number };
    };
    assert.equal(read.spec.size, 3);
    // The structural schema is enforced, so the apiserver really serves this CRD's version.
    await assert.rejects(
      objects.createNamespacedCustomObject({
        ...target,
        body: { apiVersion: `${group}/v1`, kind: 'Widget', metadata: { name: 'w2' }, spec: { size: 0 } },
      }),
      (error: unknown) => error instanceof ApiException && error.code === 422,
    );
    await extensions.deleteCustomResourceDefinition({ name: crd.metadata!.name! });
  });

  it('issues service-account tokens that verify against the OIDC discovery of the issuer', async () => {
    const namespace = await createNamespace('sa');
    const serviceAccount = 'agent';
    await core.createNamespacedServiceAccount({ namespace, body: { metadata: { name: serviceAccount } } });
    const requestToken = async (audience: string) =>
      (
        await core.createNamespacedServiceAccountToken({
          name: serviceAccount,
          namespace,
          body: { spec: { audiences: [audience], expirationSeconds: 600 } },
        })
      ).status?.token;
    const token = await requestToken('chaperone');
    assert.ok(token, 'TokenRequest returned no token');

    // No client certificate: discovery and JWKS are readable anonymously, trusting only the CA.
    const fetchWithCa = fetchTrusting({ ca: kube.caPem });
    const config = await oidc.discovery(
      new URL(kube.serviceAccountIssuer),
      'chaperone',
      undefined,
      undefined,
      {
        [oidc.customFetch]: fetchWithCa,
      },
    );
    const metadata = config.serverMetadata();
    assert.equal(metadata.issuer, kube.serviceAccountIssuer);
    assert.ok(metadata.jwks_uri, 'discovery has no jwks_uri');
    const jwks = createRemoteJWKSet(new URL(metadata.jwks_uri), { [joseCustomFetch]: fetchWithCa });

    const { payload, protectedHeader } = await jwtVerify(token, jwks, {
      issuer: kube.serviceAccountIssuer,
      audience: 'chaperone',
    });
    assert.equal(protectedHeader.alg, 'RS256');
    assert.equal(payload.sub, `system:serviceaccount:${namespace}:${serviceAccount}`);
    const claims = payload['kubernetes.io'] as { namespace: string; serviceaccount: { name: string } };
    assert.equal(claims.namespace, namespace);
    assert.equal(claims.serviceaccount.name, serviceAccount);

    const otherAudience = await requestToken('someone-else');
    assert.ok(otherAudience);
    await assert.rejects(
      jwtVerify(otherAudience, jwks, { issuer: kube.serviceAccountIssuer, audience: 'chaperone' }),
      {
        code: 'ERR_JWT_CLAIM_VALIDATION_FAILED',
      },
    );
    // The apiserver itself accepts the token it issued only for its own audiences.
    const asAgent = await httpsRequest(
      `${kube.server}/api/v1/namespaces/${namespace}/pods`,
      { ca: kube.caPem },
      {
        headers: { authorization: `Bearer ${token}` },
      },
    );
    assert.equal(asAgent.status, 401);
  });

  it('admits pods right after their namespace is created, with the service-account token volume', async () => {
    // No wait for the default ServiceAccount: the ServiceAccount admission plugin waits for the
    // controller manager to create it, as in a real cluster.
    const namespace = await createNamespace('pods');
    const pod = await core.createNamespacedPod({
      namespace,
      body: { metadata: { name: 'agent' }, spec: { containers: [{ name: 'agent', image: 'agent:latest' }] } },
    });
    assert.equal(pod.spec?.serviceAccountName, 'default');
    const tokenVolume = pod.spec?.volumes?.find((v) =>
      v.projected?.sources?.some((s) => s.serviceAccountToken),
    );
    assert.ok(tokenVolume, 'the ServiceAccount admission plugin added no projected token volume');
    // Nothing schedules or runs pods here.
    assert.equal(pod.status?.phase, 'Pending');
    assert.equal(pod.spec?.nodeName, undefined);
  });

  it('calls admission webhooks registered by URL on 127.0.0.1', async () => {
    const namespace = await createNamespace('webhook');
    const pki = await generateControlPlanePki();
    const reviewed: string[] = [];
    const webhook = createServer({ cert: pki.apiserver.certPem, key: pki.apiserver.keyPem }, (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        const review = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
          request: { uid: string; name: string; object: { metadata: { labels?: Record<string, string> } } };
        };
        reviewed.push(review.request.name);
        const deny = review.request.object.metadata.labels?.['smoke.chaperone.dev/deny'] === 'yes';
        res.setHeader('content-type', 'application/json');
        res.end(
          JSON.stringify({
            apiVersion: 'admission.k8s.io/v1',
            kind: 'AdmissionReview',
            response: {
              uid: review.request.uid,
              allowed: !deny,
              ...(deny ? { status: { code: 403, message: 'denied by the smoke webhook' } } : {}),
            },
          }),
        );
      });
    });
    await new Promise<void>((resolve) => webhook.listen(0, '127.0.0.1', resolve));
    const { port } = webhook.address() as AddressInfo;
    const admission = kc.makeApiClient(AdmissionregistrationV1Api);
    const name = `smoke-${suffix()}`;
    try {
      await admission.createValidatingWebhookConfiguration({
        body: {
          metadata: { name },
          webhooks: [
            {
              name: 'deny.smoke.test.chaperone.dev',
              admissionReviewVersions: ['v1'],
              sideEffects: 'None',
              failurePolicy: 'Fail',
              timeoutSeconds: 5,
              clientConfig: {
                url: `https://127.0.0.1:${port}/validate`,
                caBundle: Buffer.from(pki.ca.certPem).toString('base64'),
              },
              namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': namespace } },
              rules: [
                {
                  apiGroups: [''],
                  apiVersions: ['v1'],
                  operations: ['CREATE'],
                  resources: ['configmaps'],
                  scope: 'Namespaced',
                },
              ],
            },
          ],
        },
      });
      // The apiserver picks the configuration up asynchronously: retry until the webhook answers.
      let attempt = 0;
      const denial = await eventually('the webhook to deny a labelled ConfigMap', async () => {
        try {
          await core.createNamespacedConfigMap({
            namespace,
            body: {
              metadata: { name: `denied-${attempt++}`, labels: { 'smoke.chaperone.dev/deny': 'yes' } },
            },
          });
          return undefined;
        } catch (error) {
          if (error instanceof ApiException) return error;
          throw error;
        }
      });
      assert.equal(denial.code, 403);
      assert.match(String(denial.body), /denied by the smoke webhook/);
      await core.createNamespacedConfigMap({ namespace, body: { metadata: { name: 'allowed' } } });
      assert.ok(
        reviewed.includes('allowed'),
        `the webhook did not review the allowed ConfigMap: ${reviewed}`,
      );
    } finally {
      await admission.deleteValidatingWebhookConfiguration({ name }).catch(() => {});
      webhook.close();
    }
  });

  describe('command-line clients', () => {
    let helmHome: string;
    before(async () => {
      helmHome = await mkdtemp(join(tmpdir(), 'chaperone-helm-'));
    });
    after(() => rm(helmHome, { recursive: true, force: true }));
    const helmEnv = () => ({
      ...process.env,
      HELM_CACHE_HOME: join(helmHome, 'cache'),
      HELM_CONFIG_HOME: join(helmHome, 'config'),
      HELM_DATA_HOME: join(helmHome, 'data'),
    });

    it('kubectl reports the server version and lists namespaces', async () => {
      const version = JSON.parse(
        (await run(kube.kubectl, ['--kubeconfig', kube.kubeconfigPath, 'version', '-o', 'json'])).stdout,
      ) as { clientVersion: { gitVersion: string }; serverVersion: { gitVersion: string; minor: string } };
      assert.equal(version.serverVersion.gitVersion, 'v1.34.4');
      assert.equal(version.serverVersion.minor, '34');
      assert.match(version.clientVersion.gitVersion, /^v1\.34\./);
      const namespaces = (
        await run(kube.kubectl, ['--kubeconfig', kube.kubeconfigPath, 'get', 'ns', '-o', 'name'])
      ).stdout;
      assert.match(namespaces, /^namespace\/default$/m);
      assert.match(namespaces, /^namespace\/kube-system$/m);
    });

    it('helm installs a chart into the cluster', async () => {
      const { stdout: helmVersion } = await run(kube.helm, ['version', '--short'], { env: helmEnv() });
      assert.match(helmVersion, /^v4\./);

      const chart = join(helmHome, 'tiny');
      await mkdir(join(chart, 'templates'), { recursive: true });
      await writeFile(join(chart, 'Chart.yaml'), 'apiVersion: v2\nname: tiny\nversion: 0.1.0\n');
      await writeFile(join(chart, 'values.yaml'), 'greeting: hello\n');
      await writeFile(
        join(chart, 'templates', 'configmap.yaml'),
        'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-greeting\ndata:\n  greeting: {{ .Values.greeting | quote }}\n',
      );
      const namespace = await createNamespace('helm');
      const helm = (...args: string[]) =>
        run(kube.helm, [...args, '--kubeconfig', kube.kubeconfigPath, '--namespace', namespace], {
          env: helmEnv(),
        });
      await helm('install', 'smoke', chart, '--set', 'greeting=from-helm');
      const configMap = await core.readNamespacedConfigMap({ name: 'smoke-greeting', namespace });
      assert.equal(configMap.data?.greeting, 'from-helm');
      const { stdout: releases } = await helm('list', '-o', 'json');
      assert.deepEqual(
        (JSON.parse(releases) as { name: string; status: string }[]).map((r) => [r.name, r.status]),
        [['smoke', 'deployed']],
      );
      await helm('uninstall', 'smoke');
      await eventually('the uninstalled ConfigMap to be gone', () =>
        gone(() => core.readNamespacedConfigMap({ name: 'smoke-greeting', namespace })),
      );
    });
  });

  it('garbage-collects dependents and finishes namespace deletion', async () => {
    const namespace = await createNamespace('gc');
    // The serviceaccount controller gives every namespace its default ServiceAccount.
    await eventually('the default ServiceAccount', async () => {
      try {
        return await core.readNamespacedServiceAccount({ name: 'default', namespace });
      } catch (error) {
        if (isNotFound(error)) return undefined;
        throw error;
      }
    });
    const owner = await core.createNamespacedConfigMap({ namespace, body: { metadata: { name: 'owner' } } });
    await core.createNamespacedConfigMap({
      namespace,
      body: {
        metadata: {
          name: 'dependent',
          ownerReferences: [
            { apiVersion: 'v1', kind: 'ConfigMap', name: 'owner', uid: owner.metadata!.uid! },
          ],
        },
      },
    });
    await core.createNamespacedConfigMap({ namespace, body: { metadata: { name: 'bystander' } } });
    await core.deleteNamespacedConfigMap({ name: 'owner', namespace, propagationPolicy: 'Background' });
    await eventually('the garbage collector to delete the dependent', () =>
      gone(() => core.readNamespacedConfigMap({ name: 'dependent', namespace })),
    );
    // The collector deleted what was owned, nothing else.
    await core.readNamespacedConfigMap({ name: 'bystander', namespace });

    await core.deleteNamespace({ name: namespace });
    const terminating = await core.readNamespace({ name: namespace });
    assert.equal(terminating.status?.phase, 'Terminating');
    await eventually(
      'the namespace controller to finish deleting the namespace',
      () => gone(() => core.readNamespace({ name: namespace })),
      60_000,
    );
  });
});

describe('kube control plane restarts', () => {
  let plane: KubeControlPlane;
  let planeKc: KubeConfig;
  before(async () => {
    const started = performance.now();
    plane = await startKubeControlPlane(await mkdtemp(join(tmpdir(), 'chaperone-kube-restart-')));
    console.log(
      `[kube.test] second control plane ready in ${Math.round(performance.now() - started)} ms ${JSON.stringify(plane.startupMs)}`,
    );
    planeKc = kubeConfigFor(plane.info);
  });
  after(() => plane?.stop());

  it('keeps state across an apiserver restart and a crash, on the same address', async () => {
    const planeCore = planeKc.makeApiClient(CoreV1Api);
    await planeCore.createNamespacedConfigMap({
      namespace: 'default',
      body: { metadata: { name: 'survivor' }, data: { kept: 'yes' } },
    });

    let started = performance.now();
    await plane.restartApiserver();
    console.log(`[kube.test] graceful apiserver restart took ${Math.round(performance.now() - started)} ms`);
    const afterRestart = await planeCore.readNamespacedConfigMap({ name: 'survivor', namespace: 'default' });
    assert.equal(afterRestart.data?.kept, 'yes');

    await plane.stopApiserver({ signal: 'SIGKILL' });
    await assert.rejects(
      planeCore.readNamespacedConfigMap({ name: 'survivor', namespace: 'default' }),
      (error) => {
        return error instanceof Error && /ECONNREFUSED/.test(`${error.message} ${String(error.cause ?? '')}`);
      },
    );
    started = performance.now();
    await plane.startApiserver();
    console.log(
      `[kube.test] apiserver start after a crash took ${Math.round(performance.now() - started)} ms`,
    );
    const afterCrash = await planeCore.readNamespacedConfigMap({ name: 'survivor', namespace: 'default' });
    assert.equal(afterCrash.data?.kept, 'yes');
  });
});

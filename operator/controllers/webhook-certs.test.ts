// Webhook TLS against the real apiserver: the controller creates CA and serving cert, publishes the
// bundle into labelled webhook configurations (also ones created later), renews the serving cert
// and rotates the CA with an overlap in which both CAs are trusted. Time is the test's: the
// controller reads an injected clock, the test moves it to just before and just after each
// renewal point and asks for a pass (resync), so nothing depends on how fast this machine runs.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { createServer, get } from 'node:https';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { rootCertificates } from 'node:tls';
import {
  AdmissionregistrationV1Api,
  CoreV1Api,
  type KubeConfig,
  KubernetesObjectApi,
  type V1Secret,
  type V1ValidatingWebhook,
} from '@kubernetes/client-node';
import { pino } from 'pino';
import { testEnv } from '../../test/env/index.ts';
import { kubeConfigFor } from '../../test/env/kube.ts';
import { inspectCert, splitPemBundle } from '../certs/pki.ts';
import { renewAt } from '../certs/plan.ts';
import { EventRecorder } from '../kube/events.ts';
import { OperatorMetrics } from '../metrics.ts';
import { createNamespace, testOperatorConfig, uniqueName, waitFor } from '../testing/kube.ts';
import { WebhookCertController } from './webhook-certs.ts';

const env = await testEnv(['kube']);

const decode = (secret: V1Secret, key: string) =>
  Buffer.from(secret.data?.[key] ?? '', 'base64').toString('utf8');

/** Serves with the given cert and connects trusting `ca`: resolves true when the handshake verifies. */
async function handshake(certPem: string, keyPem: string, ca: string): Promise<boolean> {
  const server = createServer({ cert: certPem, key: keyPem }, (_req, res) => res.end('ok'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  try {
    return await new Promise<boolean>((resolve) => {
      const req = get({ host: '127.0.0.1', port, path: '/', ca, agent: false }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode === 200));
      });
      req.on('error', () => resolve(false));
    });
  } finally {
    server.close();
  }
}

function webhook(name: string): V1ValidatingWebhook {
  return {
    name,
    // Never called: no namespace carries this label, and failures are ignored.
    clientConfig: { url: 'https://127.0.0.1:1/never' },
    rules: [
      {
        operations: ['CREATE'],
        apiGroups: ['chaperone.dev'],
        apiVersions: ['v1alpha1'],
        resources: ['nothing'],
      },
    ],
    namespaceSelector: { matchLabels: { 'chaperone.dev/never-matches': 'true' } },
    failurePolicy: 'Ignore',
    sideEffects: 'None',
    admissionReviewVersions: ['v1'],
  };
}

const DAY = 86_400;
const SECOND = 1000;

describe('webhook certificates', { timeout: 120_000 }, () => {
  let kc: KubeConfig;
  let core: CoreV1Api;
  let admission: AdmissionregistrationV1Api;
  let systemNs: string;
  let controller: WebhookCertController | undefined;
  // The controller's clock: starts at the real time (so the first certificate also verifies in a
  // real TLS handshake) and moves only when a test moves it.
  let clockMs = Date.now();
  const setClock = (at: Date | number) => {
    clockMs = typeof at === 'number' ? at : at.getTime();
  };
  const certOf = async (name: () => Promise<V1Secret>, key = 'tls.crt') =>
    inspectCert(decode(await name(), key))!;
  const suite = uniqueName('certs');
  const labels = { 'app.kubernetes.io/part-of': 'chaperone', 'chaperone.dev/test-suite': suite };
  const validatingName = `${suite}-validating`;
  const mutatingName = `${suite}-mutating`;

  const tlsSecret = () => core.readNamespacedSecret({ name: 'chaperone-webhook-tls', namespace: systemNs });
  const caSecret = () => core.readNamespacedSecret({ name: 'chaperone-webhook-ca', namespace: systemNs });
  const bundles = async () => {
    const v = await admission.readValidatingWebhookConfiguration({ name: validatingName });
    const m = await admission.readMutatingWebhookConfiguration({ name: mutatingName }).catch(() => undefined);
    return [
      ...(v.webhooks ?? []).map((w) => w.clientConfig.caBundle),
      ...(m?.webhooks ?? []).map((w) => w.clientConfig.caBundle),
    ].map((b) => Buffer.from(b ?? '', 'base64').toString('utf8'));
  };

  before(async () => {
    kc = kubeConfigFor(env.kube);
    core = kc.makeApiClient(CoreV1Api);
    admission = kc.makeApiClient(AdmissionregistrationV1Api);
    systemNs = await createNamespace(kc, 'chaperone-system');
    await admission.createValidatingWebhookConfiguration({
      body: {
        metadata: { name: validatingName, labels },
        webhooks: [webhook('a.chaperone.dev'), webhook('b.chaperone.dev')],
      },
    });
    const config = testOperatorConfig({
      systemNamespace: systemNs,
      watchNamespace: systemNs,
      leaderElection: { enabled: false },
      certificates: {
        mode: 'operator',
        localUrl: true,
        webhookSelector: `chaperone.dev/test-suite=${suite}`,
        caLifetimeSeconds: 30 * DAY,
        servingLifetimeSeconds: DAY,
      },
    });
    const logger = pino({ level: config.logLevel });
    controller = new WebhookCertController({
      kubeConfig: kc,
      core,
      admission,
      objects: KubernetesObjectApi.makeApiClient(kc),
      config,
      logger,
      metrics: new OperatorMetrics(),
      events: new EventRecorder(core, { component: 'chaperone-operator', instance: suite, logger }),
      now: () => new Date(clockMs),
    });
    await controller.start();
  });

  after(async () => {
    await controller?.stop();
    await admission.deleteValidatingWebhookConfiguration({ name: validatingName }).catch(() => undefined);
    await admission.deleteMutatingWebhookConfiguration({ name: mutatingName }).catch(() => undefined);
    await core.deleteNamespace({ name: systemNs }).catch(() => undefined);
  });

  let firstCa: string;

  it('creates the serving Secret (kubernetes.io/tls + ca.crt) with the webhook names', async () => {
    const secret = await waitFor('TLS Secret', () => tlsSecret());
    assert.equal(secret.type, 'kubernetes.io/tls');
    const certPem = decode(secret, 'tls.crt');
    const keyPem = decode(secret, 'tls.key');
    firstCa = decode(secret, 'ca.crt');
    assert.equal(secret.data?.['ca.key'], undefined, 'the CA key stays in its own Secret');
    const cert = new X509Certificate(certPem);
    for (const host of [
      'localhost',
      `chaperone-webhook.${systemNs}.svc`,
      `chaperone-webhook.${systemNs}.svc.cluster.local`,
    ]) {
      assert.equal(cert.checkHost(host), host);
    }
    assert.equal(cert.checkIP('127.0.0.1'), '127.0.0.1');
    assert.ok(cert.verify(new X509Certificate(firstCa).publicKey));
    assert.equal(await handshake(certPem, keyPem, firstCa), true);
    assert.equal(await handshake(certPem, keyPem, rootCertificates.join('\n')), false);
  });

  it('patches caBundle into every labelled webhook configuration, also ones created later', async () => {
    await waitFor('validating caBundle', async () => (await bundles()).every((b) => b === firstCa));
    assert.equal((await bundles()).length, 2);
    await admission.createMutatingWebhookConfiguration({
      body: {
        metadata: { name: mutatingName, labels },
        webhooks: [{ ...webhook('m.chaperone.dev'), reinvocationPolicy: 'Never' }],
      },
    });
    await waitFor('mutating caBundle', async () => {
      const all = await bundles();
      return all.length === 3 && all.every((b) => b === firstCa);
    });
  });

  it('renews the serving certificate at its renewal point, not before, signed by the same CA', async () => {
    const first = decode(await tlsSecret(), 'tls.crt');
    const due = renewAt(await certOf(tlsSecret), 2 / 3);
    setClock(due.getTime() - 60 * SECOND);
    await controller!.resync();
    assert.equal(decode(await tlsSecret(), 'tls.crt'), first, 'kept until its renewal point');
    setClock(due.getTime() + SECOND);
    await controller!.resync();
    const renewed = await tlsSecret();
    assert.notEqual(decode(renewed, 'tls.crt'), first, 'renewed once past its renewal point');
    assert.equal(decode(renewed, 'ca.crt'), firstCa);
    const facts = inspectCert(decode(renewed, 'tls.crt'))!;
    assert.ok(facts.x509.verify(new X509Certificate(firstCa).publicKey));
    assert.ok(facts.notAfter.getTime() > due.getTime() + 23 * 3600 * SECOND, 'a fresh lifetime');
  });

  it('rotates the CA keeping the old one trusted during the overlap, then drops it', async () => {
    const ca = await certOf(caSecret, 'ca.crt');
    const due = renewAt(ca, 2 / 3);
    setClock(due.getTime() - 60 * SECOND);
    await controller!.resync();
    assert.equal(
      splitPemBundle(decode(await tlsSecret(), 'ca.crt')).length,
      1,
      'one CA before its renewal point',
    );
    setClock(due.getTime() + SECOND);
    await controller!.resync();
    const rotated = await tlsSecret();
    const [newCa, oldCa, ...rest] = splitPemBundle(decode(rotated, 'ca.crt'));
    assert.deepEqual(rest, []);
    assert.equal(oldCa, firstCa);
    assert.notEqual(newCa, firstCa);
    assert.equal(decode(await caSecret(), 'ca.crt'), newCa);
    const serving = new X509Certificate(decode(rotated, 'tls.crt'));
    assert.ok(
      serving.verify(new X509Certificate(newCa!).publicKey),
      'the new serving cert is signed by the new CA',
    );
    assert.equal(serving.verify(new X509Certificate(oldCa!).publicKey), false);
    await waitFor('both CAs in every caBundle', async () =>
      (await bundles()).every((b) => b === decode(rotated, 'ca.crt')),
    );

    // The old CA stays trusted until it expires, then it leaves the bundle.
    setClock(ca.notAfter.getTime() - SECOND);
    await controller!.resync();
    assert.equal(splitPemBundle(decode(await tlsSecret(), 'ca.crt')).length, 2, 'old CA kept while valid');
    setClock(ca.notAfter.getTime() + SECOND);
    await controller!.resync();
    const bundle = decode(await tlsSecret(), 'ca.crt');
    assert.deepEqual(splitPemBundle(bundle), [newCa], 'the expired CA is dropped');
    await waitFor('the expired CA gone from every caBundle', async () =>
      (await bundles()).every((b) => b === bundle),
    );
  });
});

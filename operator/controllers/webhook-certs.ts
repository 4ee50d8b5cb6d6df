// Keeps the webhook's TLS: CA in Secret chaperone-webhook-ca (never mounted), serving cert and trust
// bundle in Secret chaperone-webhook-tls (kubernetes.io/tls + ca.crt, watched by the webhook which
// swaps it live), and the bundle in caBundle of every labelled Mutating/ValidatingWebhookConfiguration.
// Order on CA rotation: CA Secret, then caBundle (old + new), then the serving cert signed by the new
// CA, so the apiserver trusts the new cert before the webhook serves it.
import type {
  AdmissionregistrationV1Api,
  CoreV1Api,
  KubeConfig,
  KubernetesObjectApi,
  V1MutatingWebhookConfiguration,
  V1Secret,
  V1ValidatingWebhookConfiguration,
} from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { generateCa, inspectCert, issueServingCert } from '../certs/pki.ts';
import {
  CA_SECRET_KEYS,
  type CertSettings,
  caBundle,
  nextCheck,
  planCertificates,
  TLS_SECRET_KEYS,
  webhookDnsNames,
} from '../certs/plan.ts';
import type { OperatorConfig } from '../config.ts';
import { serverSideApply } from '../kube/apply.ts';
import { errorMessage, isNotFound } from '../kube/errors.ts';
import type { EventRecorder } from '../kube/events.ts';
import { ResilientInformer } from '../kube/informer.ts';
import { WorkQueue } from '../kube/queue.ts';
import type { OperatorMetrics } from '../metrics.ts';
import { LABELS, MANAGED_BY_VALUE, PART_OF_VALUE } from '../render/labels.ts';

const KEY = 'webhook-certs';
const CONTROLLER = 'webhook-certs';

export interface WebhookCertControllerDeps {
  kubeConfig: KubeConfig;
  core: CoreV1Api;
  admission: AdmissionregistrationV1Api;
  objects: KubernetesObjectApi;
  config: OperatorConfig;
  logger: Logger;
  metrics: OperatorMetrics;
  events: EventRecorder;
  now?: () => Date;
}

function decode(secret: V1Secret | undefined): Record<string, string> | undefined {
  if (!secret?.data) return undefined;
  return Object.fromEntries(
    Object.entries(secret.data).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]),
  );
}

function encode(data: Record<string, string>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(data).map(([k, v]) => [k, Buffer.from(v, 'utf8').toString('base64')]),
  );
}

export function certSettings(config: OperatorConfig): CertSettings {
  const c = config.certificates;
  return {
    dnsNames: [
      ...webhookDnsNames(c.serviceName, config.systemNamespace, c.extraDnsNames),
      ...(c.localUrl ? ['localhost'] : []),
    ],
    ipAddresses: [...(c.localUrl ? ['127.0.0.1', '::1'] : []), ...c.extraIpAddresses],
    caLifetimeMs: c.caLifetimeSeconds * 1000,
    servingLifetimeMs: c.servingLifetimeSeconds * 1000,
    renewAtFraction: c.renewAtFraction,
  };
}

/** notBefore slightly in the past so a client with a clock a little behind accepts the cert. */
function backdate(now: Date, lifetimeMs: number): Date {
  return new Date(now.getTime() - Math.min(5 * 60_000, lifetimeMs / 10));
}

export class WebhookCertController {
  readonly #d: WebhookCertControllerDeps;
  readonly #queue: WorkQueue;
  readonly #informers: ResilientInformer<
    V1Secret | V1MutatingWebhookConfiguration | V1ValidatingWebhookConfiguration
  >[];

  constructor(deps: WebhookCertControllerDeps) {
    this.#d = deps;
    const { metrics, logger, config, kubeConfig, core, admission } = deps;
    this.#queue = new WorkQueue(() => this.#reconcileMeasured(), {
      concurrency: 1,
      onDepth: (n) => metrics.queueDepth.set({ controller: CONTROLLER }, n),
      onError: (_key, error, retryInMs) => {
        metrics.reconcileErrors.inc({ controller: CONTROLLER });
        logger.warn({ err: errorMessage(error), retryInMs }, 'webhook certificate reconcile failed');
      },
    });
    const enqueue = () => this.#queue.add(KEY);
    const ns = config.systemNamespace;
    const selector = config.certificates.webhookSelector;
    const common = { kubeConfig, logger, onEvent: enqueue };
    this.#informers = [
      new ResilientInformer<V1Secret>({
        ...common,
        name: 'webhook-tls-secrets',
        path: `/api/v1/namespaces/${ns}/secrets`,
        labelSelector: `${LABELS.managedBy}=${MANAGED_BY_VALUE}`,
        list: () =>
          core.listNamespacedSecret({
            namespace: ns,
            labelSelector: `${LABELS.managedBy}=${MANAGED_BY_VALUE}`,
          }),
        onRestart: () => metrics.informerRestarts.inc({ informer: 'webhook-tls-secrets' }),
      }),
      new ResilientInformer<V1MutatingWebhookConfiguration>({
        ...common,
        name: 'mutating-webhook-configurations',
        path: '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations',
        labelSelector: selector,
        list: () => admission.listMutatingWebhookConfiguration({ labelSelector: selector }),
        onRestart: () => metrics.informerRestarts.inc({ informer: 'mutating-webhook-configurations' }),
      }),
      new ResilientInformer<V1ValidatingWebhookConfiguration>({
        ...common,
        name: 'validating-webhook-configurations',
        path: '/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations',
        labelSelector: selector,
        list: () => admission.listValidatingWebhookConfiguration({ labelSelector: selector }),
        onRestart: () => metrics.informerRestarts.inc({ informer: 'validating-webhook-configurations' }),
      }),
    ] as ResilientInformer<V1Secret | V1MutatingWebhookConfiguration | V1ValidatingWebhookConfiguration>[];
  }

  async start(): Promise<void> {
    this.#queue.start();
    this.#queue.add(KEY);
    await Promise.all(this.#informers.map((i) => i.start()));
  }

  /**
   * Asks for a pass now; resolves once a pass that started after this call has finished (tests
   * drive an injected clock and then call this instead of waiting for the requeue timer).
   */
  resync(): Promise<void> {
    this.#queue.add(KEY);
    return this.#queue.idle();
  }

  get synced(): boolean {
    return this.#informers.every((i) => i.synced);
  }

  async stop(): Promise<void> {
    await Promise.all(this.#informers.map((i) => i.stop()));
    await this.#queue.stop();
  }

  async #reconcileMeasured(): Promise<{ requeueAfterMs: number }> {
    const end = this.#d.metrics.reconcileSeconds.startTimer({ controller: CONTROLLER });
    try {
      const result = await this.reconcile();
      this.#d.metrics.reconciles.inc({ controller: CONTROLLER, result: 'success' });
      return result;
    } catch (error) {
      this.#d.metrics.reconciles.inc({ controller: CONTROLLER, result: 'error' });
      throw error;
    } finally {
      end();
    }
  }

  async #readSecret(name: string): Promise<V1Secret | undefined> {
    try {
      return await this.#d.core.readNamespacedSecret({ name, namespace: this.#d.config.systemNamespace });
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  async #writeSecret(
    name: string,
    type: string,
    data: Record<string, string>,
    existing: V1Secret | undefined,
  ) {
    const namespace = this.#d.config.systemNamespace;
    if (existing && existing.type !== type) {
      // The type of a Secret is immutable: replace the object.
      await this.#d.core.deleteNamespacedSecret({ name, namespace });
    }
    await serverSideApply(this.#d.objects, {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: {
        name,
        namespace,
        labels: { [LABELS.managedBy]: MANAGED_BY_VALUE, [LABELS.partOf]: PART_OF_VALUE },
      },
      type,
      data: encode(data),
    } as V1Secret);
  }

  /** One pass; returns when to look again (renewal or expiry of a previous CA). */
  async reconcile(): Promise<{ requeueAfterMs: number }> {
    const { config, logger, events, metrics } = this.#d;
    const now = this.#d.now?.() ?? new Date();
    const settings = certSettings(config);
    const c = config.certificates;
    const caSecret = await this.#readSecret(c.caSecretName);
    const tlsSecret = await this.#readSecret(c.secretName);
    const caData = decode(caSecret);
    const tlsData = decode(tlsSecret);
    const plan = planCertificates(caData, tlsData, settings, now);

    let ca = { certPem: caData?.[CA_SECRET_KEYS.cert] ?? '', keyPem: caData?.[CA_SECRET_KEYS.key] ?? '' };
    if (plan.ca !== 'keep') {
      ca = await generateCa({
        commonName: `chaperone-webhook-ca@${Math.floor(now.getTime() / 1000)}`,
        notBefore: backdate(now, settings.caLifetimeMs),
        notAfter: new Date(now.getTime() + settings.caLifetimeMs),
      });
    }
    const previous = plan.previousCas.join('');
    if (plan.ca !== 'keep' || (caData?.[CA_SECRET_KEYS.previous] ?? '') !== previous) {
      await this.#writeSecret(
        c.caSecretName,
        'Opaque',
        {
          [CA_SECRET_KEYS.cert]: ca.certPem,
          [CA_SECRET_KEYS.key]: ca.keyPem,
          ...(previous !== '' ? { [CA_SECRET_KEYS.previous]: previous } : {}),
        },
        caSecret,
      );
      if (plan.ca !== 'keep') {
        logger.info({ action: plan.ca, reasons: plan.reasons }, 'webhook CA written');
        void events.emit(
          this.#subject(c.caSecretName),
          'Normal',
          plan.ca === 'create' ? 'CACreated' : 'CARotated',
          `webhook CA ${plan.ca === 'create' ? 'created' : 'rotated'}: ${plan.reasons.join(', ')}`,
        );
      }
    }
    const bundle = caBundle(ca.certPem, plan.previousCas);
    await this.#patchWebhookConfigurations(bundle);

    let serving = {
      certPem: tlsData?.[TLS_SECRET_KEYS.cert] ?? '',
      keyPem: tlsData?.[TLS_SECRET_KEYS.key] ?? '',
    };
    if (plan.serving === 'issue') {
      const caFacts = inspectCert(ca.certPem)!;
      serving = await issueServingCert({
        ca,
        commonName: `${c.serviceName}.${config.systemNamespace}.svc`,
        dnsNames: settings.dnsNames,
        ipAddresses: settings.ipAddresses,
        notBefore: backdate(now, settings.servingLifetimeMs),
        // Never beyond the CA: a cert outliving its issuer would fail verification anyway.
        notAfter: new Date(Math.min(now.getTime() + settings.servingLifetimeMs, caFacts.notAfter.getTime())),
      });
    }
    if (
      plan.serving === 'issue' ||
      tlsData?.[TLS_SECRET_KEYS.ca] !== bundle ||
      tlsSecret?.type !== 'kubernetes.io/tls'
    ) {
      await this.#writeSecret(
        c.secretName,
        'kubernetes.io/tls',
        {
          [TLS_SECRET_KEYS.cert]: serving.certPem,
          [TLS_SECRET_KEYS.key]: serving.keyPem,
          [TLS_SECRET_KEYS.ca]: bundle,
        },
        tlsSecret,
      );
      if (plan.serving === 'issue') {
        logger.info({ reasons: plan.reasons }, 'webhook serving certificate issued');
        void events.emit(
          this.#subject(c.secretName),
          'Normal',
          'CertificateIssued',
          `webhook serving certificate issued: ${plan.reasons.join(', ') || 'CA changed'}`,
        );
      }
    }
    const servingFacts = inspectCert(serving.certPem);
    const caFacts = inspectCert(ca.certPem);
    if (servingFacts) metrics.certNotAfter.set({ cert: 'serving' }, servingFacts.notAfter.getTime() / 1000);
    if (caFacts) metrics.certNotAfter.set({ cert: 'ca' }, caFacts.notAfter.getTime() / 1000);

    const next = nextCheck([ca.certPem, serving.certPem], plan.previousCas, settings.renewAtFraction, now);
    const resyncMs = config.resyncSeconds * 1000;
    const requeueAfterMs = next
      ? Math.max(1000, Math.min(resyncMs, next.getTime() - now.getTime() + 100))
      : resyncMs;
    return { requeueAfterMs };
  }

  #subject(name: string) {
    return { apiVersion: 'v1', kind: 'Secret', name, namespace: this.#d.config.systemNamespace };
  }

  async #patchWebhookConfigurations(bundle: string): Promise<void> {
    const { admission, config, logger } = this.#d;
    const caBundleB64 = Buffer.from(bundle, 'utf8').toString('base64');
    const selector = config.certificates.webhookSelector;
    const patchesFor = (webhooks: { name: string; clientConfig: { caBundle?: string } }[] | undefined) =>
      (webhooks ?? []).flatMap((webhook, index) =>
        webhook.clientConfig.caBundle === caBundleB64
          ? []
          : [
              // Guards against the list changing between our read and our write.
              { op: 'test', path: `/webhooks/${index}/name`, value: webhook.name },
              { op: 'add', path: `/webhooks/${index}/clientConfig/caBundle`, value: caBundleB64 },
            ],
      );
    const mutating = await admission.listMutatingWebhookConfiguration({ labelSelector: selector });
    for (const item of mutating.items) {
      const ops = patchesFor(item.webhooks);
      if (ops.length === 0) continue;
      await admission.patchMutatingWebhookConfiguration({ name: item.metadata!.name!, body: ops });
      logger.info(
        { configuration: item.metadata?.name, kind: 'MutatingWebhookConfiguration' },
        'caBundle patched',
      );
    }
    const validating = await admission.listValidatingWebhookConfiguration({ labelSelector: selector });
    for (const item of validating.items) {
      const ops = patchesFor(item.webhooks);
      if (ops.length === 0) continue;
      await admission.patchValidatingWebhookConfiguration({ name: item.metadata!.name!, body: ops });
      logger.info(
        { configuration: item.metadata?.name, kind: 'ValidatingWebhookConfiguration' },
        'caBundle patched',
      );
    }
  }
}

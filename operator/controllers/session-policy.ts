// SessionPolicy -> ConfigMap + NetworkPolicy (server-side apply, owned by the policy), storage
// bootstrap, status conditions and Events. Level-triggered: every event only enqueues the policy's
// key; the reconcile looks at the whole state and makes it right, so a missed or duplicated event
// costs nothing.

import { isDeepStrictEqual } from 'node:util';
import type {
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  KubernetesListObject,
  KubernetesObject,
  KubernetesObjectApi,
  NetworkingV1Api,
  V1ConfigMap,
  V1NetworkPolicy,
} from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { type Condition, SESSION_POLICY, type SessionPolicySpec } from '../../crds/index.ts';
import type { OperatorConfig } from '../config.ts';
import { serverSideApply } from '../kube/apply.ts';
import { canonicalJson } from '../kube/canonical.ts';
import { errorMessage, isConflict, isNotFound, statusCode } from '../kube/errors.ts';
import type { EventRecorder, EventSubject } from '../kube/events.ts';
import { ResilientInformer } from '../kube/informer.ts';
import { WorkQueue } from '../kube/queue.ts';
import type { OperatorMetrics } from '../metrics.ts';
import {
  CHILD_SELECTOR,
  childName,
  findCondition,
  hasSshTargets,
  LABELS,
  PolicyInvalidError,
  parsePolicySpec,
  parseS3Url,
  renderConfigMap,
  renderKnownHostsConfigMap,
  renderNetworkPolicy,
  renderSidecarConfig,
  renderSshHostKeySecret,
  SESSION_POLICY_API_VERSION,
  type SessionPolicyObject,
  SSH_HOST_KEY_KEYS,
  secretReferences,
  setCondition,
  sshHostKeySecretName,
  sshKnownHostsName,
} from '../render/index.ts';
import {
  type StorageBootstrapper,
  StorageProblem,
  type StoreCredentials,
  type StoreLocation,
  storeKey,
} from '../storage/bootstrap.ts';

const CONTROLLER = 'sessionpolicy';
export const READY = 'Ready';

export interface SessionPolicyControllerDeps {
  kubeConfig: KubeConfig;
  core: CoreV1Api;
  networking: NetworkingV1Api;
  custom: CustomObjectsApi;
  objects: KubernetesObjectApi;
  config: OperatorConfig;
  logger: Logger;
  metrics: OperatorMetrics;
  events: EventRecorder;
  storage?: StorageBootstrapper;
}

interface PolicyStatus {
  observedGeneration?: number;
  conditions?: Condition[];
  configMapName?: string;
  networkPolicyName?: string;
}

type ChildObject = V1ConfigMap | V1NetworkPolicy;

/** What one reconcile renders for a policy's children. */
interface RenderedChildren {
  configMap: ReturnType<typeof renderConfigMap>;
  networkPolicy?: ReturnType<typeof renderNetworkPolicy>;
}
type PolicyResource = SessionPolicyObject & KubernetesObject & { metadata: SessionPolicyObject['metadata'] };

/** A failed JSON-patch `test` comes back as 422 Invalid without field causes (a schema refusal has causes). */
function isStaleGenerationError(error: unknown): boolean {
  if (statusCode(error) !== 422) return false;
  const body = (error as { body?: unknown }).body;
  try {
    const status = (typeof body === 'string' ? JSON.parse(body) : body) as {
      details?: { causes?: unknown[] };
    };
    return (status?.details?.causes?.length ?? 0) === 0;
  } catch {
    return false;
  }
}

function splitKey(key: string): [string, string] {
  const slash = key.indexOf('/');
  return [key.slice(0, slash), key.slice(slash + 1)];
}

function policyKey(namespace: string | undefined, name: string): string {
  return `${namespace ?? ''}/${name}`;
}

/** Reasons that clear up without a spec change (a Secret appears, a bucket gets fixed): look again. */
const RECHECK_REASONS = new Set([
  'SecretNotFound',
  'SecretKeyMissing',
  'ObjectLockNotEnabled',
  'StoreAccessDenied',
  'StorageError',
]);

export class SessionPolicyController {
  readonly #d: SessionPolicyControllerDeps;
  readonly #queue: WorkQueue;
  readonly #policies: ResilientInformer<PolicyResource>;
  readonly #configMaps: ResilientInformer<V1ConfigMap>;
  readonly #networkPolicies: ResilientInformer<V1NetworkPolicy>;
  #resyncTimer: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(deps: SessionPolicyControllerDeps) {
    this.#d = deps;
    const { config, metrics, logger, kubeConfig, custom, core, networking } = deps;
    this.#queue = new WorkQueue((key) => this.#reconcileMeasured(key), {
      concurrency: config.concurrency,
      onDepth: (n) => metrics.queueDepth.set({ controller: CONTROLLER }, n),
      onError: (key, error, retryInMs) => {
        metrics.reconcileErrors.inc({ controller: CONTROLLER });
        logger.warn({ policy: key, err: errorMessage(error), retryInMs }, 'reconcile failed; retrying');
      },
    });
    const ns = config.watchNamespace;
    const { group, version, plural } = SESSION_POLICY;
    this.#policies = new ResilientInformer({
      name: 'sessionpolicies',
      kubeConfig,
      logger,
      path: ns
        ? `/apis/${group}/${version}/namespaces/${ns}/${plural}`
        : `/apis/${group}/${version}/${plural}`,
      list: async () =>
        (ns
          ? await custom.listNamespacedCustomObject({ group, version, namespace: ns, plural })
          : await custom.listClusterCustomObject({
              group,
              version,
              plural,
            })) as KubernetesListObject<PolicyResource>,
      onEvent: (_event, policy) =>
        this.#queue.add(policyKey(policy.metadata.namespace, policy.metadata.name)),
      onRestart: () => metrics.informerRestarts.inc({ informer: 'sessionpolicies' }),
    });
    const onChild = (_event: string, child: ChildObject) => {
      const owner = child.metadata?.labels?.[LABELS.policy];
      if (owner) this.#queue.add(policyKey(child.metadata?.namespace, owner));
    };
    this.#configMaps = new ResilientInformer<V1ConfigMap>({
      name: 'configmaps',
      kubeConfig,
      logger,
      path: ns ? `/api/v1/namespaces/${ns}/configmaps` : '/api/v1/configmaps',
      labelSelector: CHILD_SELECTOR,
      list: () =>
        ns
          ? core.listNamespacedConfigMap({ namespace: ns, labelSelector: CHILD_SELECTOR })
          : core.listConfigMapForAllNamespaces({ labelSelector: CHILD_SELECTOR }),
      onEvent: onChild,
      onRestart: () => metrics.informerRestarts.inc({ informer: 'configmaps' }),
    });
    this.#networkPolicies = new ResilientInformer<V1NetworkPolicy>({
      name: 'networkpolicies',
      kubeConfig,
      logger,
      path: ns
        ? `/apis/networking.k8s.io/v1/namespaces/${ns}/networkpolicies`
        : '/apis/networking.k8s.io/v1/networkpolicies',
      labelSelector: CHILD_SELECTOR,
      list: () =>
        ns
          ? networking.listNamespacedNetworkPolicy({ namespace: ns, labelSelector: CHILD_SELECTOR })
          : networking.listNetworkPolicyForAllNamespaces({ labelSelector: CHILD_SELECTOR }),
      onEvent: onChild,
      onRestart: () => metrics.informerRestarts.inc({ informer: 'networkpolicies' }),
    });
  }

  /** Starts the informers, then the workers once every cache holds a first list. */
  async start(): Promise<void> {
    await Promise.all([this.#policies.start(), this.#configMaps.start(), this.#networkPolicies.start()]);
    // stop() may have come while the caches were filling.
    if (this.#stopped) return;
    this.#queue.start();
    const resync = () => {
      for (const policy of this.#policies.list()) {
        this.#queue.add(policyKey(policy.metadata.namespace, policy.metadata.name));
      }
    };
    this.#resyncTimer = setInterval(resync, this.#d.config.resyncSeconds * 1000);
    this.#resyncTimer.unref();
  }

  get synced(): boolean {
    return this.#policies.synced && this.#configMaps.synced && this.#networkPolicies.synced;
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#resyncTimer);
    await Promise.all([this.#policies.stop(), this.#configMaps.stop(), this.#networkPolicies.stop()]);
    await this.#queue.stop();
  }

  /** Waits until no key is queued or being reconciled. For tests. */
  idle(): Promise<void> {
    return this.#queue.idle();
  }

  async #reconcileMeasured(key: string) {
    const end = this.#d.metrics.reconcileSeconds.startTimer({ controller: CONTROLLER });
    try {
      const result = await this.reconcile(key);
      this.#d.metrics.reconciles.inc({
        controller: CONTROLLER,
        result: result.invalid ? 'invalid' : 'success',
      });
      return result.requeueAfterMs !== undefined ? { requeueAfterMs: result.requeueAfterMs } : undefined;
    } catch (error) {
      this.#d.metrics.reconciles.inc({ controller: CONTROLLER, result: 'error' });
      throw error;
    } finally {
      end();
    }
  }

  async reconcile(key: string): Promise<{ invalid?: boolean; requeueAfterMs?: number }> {
    const [namespace, name] = splitKey(key);
    const policy = this.#policies.get(name, namespace);
    if (!policy) {
      await this.#pruneOrphans(namespace, name);
      return {};
    }
    if ((policy.metadata as { deletionTimestamp?: unknown }).deletionTimestamp) return {};
    const { config, logger } = this.#d;
    const subject = this.#subject(policy);
    let rendered: RenderedChildren | undefined;
    try {
      const spec = parsePolicySpec(policy);
      const sidecarConfig = renderSidecarConfig(policy, {
        approvalsBackend: config.sidecar.approvalsBackend,
        adminPort: config.sidecar.adminPort,
        ...(config.sidecar.kubernetesCaFile ? { kubernetesCaFile: config.sidecar.kubernetesCaFile } : {}),
      });
      rendered = {
        configMap: renderConfigMap(policy, sidecarConfig),
        ...(config.networkPolicy.enabled
          ? {
              networkPolicy: renderNetworkPolicy(policy, {
                dns: config.networkPolicy.dns,
                approvalsBackend: config.sidecar.approvalsBackend,
                ...(config.networkPolicy.apiServer ? { apiServer: config.networkPolicy.apiServer } : {}),
                ...(config.networkPolicy.clusterCidrs
                  ? { clusterCidrs: config.networkPolicy.clusterCidrs }
                  : {}),
              }),
            }
          : {}),
      };
      const secrets = await this.#checkSecrets(namespace, spec);
      await serverSideApply(this.#d.objects, rendered.configMap);
      if (hasSshTargets(spec)) await this.#ensureSshHostKey(policy, spec);
      if (rendered.networkPolicy) await serverSideApply(this.#d.objects, rendered.networkPolicy);
      await this.#pruneStale(policy);
      await this.#bootstrapStorage(spec, secrets);
      const changed = await this.#writeStatus(policy, {
        status: 'True',
        reason: 'Reconciled',
        message: `ConfigMap ${childName(name)}${config.networkPolicy.enabled ? ` and NetworkPolicy ${childName(name)} are` : ' is'} up to date`,
      });
      if (changed)
        void this.#d.events.emit(
          subject,
          'Normal',
          'Reconciled',
          `rendered generation ${policy.metadata.generation ?? 0}`,
        );
      return {};
    } catch (error) {
      if (error instanceof PolicyInvalidError || error instanceof StorageProblem) {
        logger.info({ policy: key, reason: error.reason, message: error.message }, 'policy not ready');
        await this.#writeStatus(policy, { status: 'False', reason: error.reason, message: error.message });
        void this.#d.events.emit(subject, 'Warning', error.reason, error.message);
        return RECHECK_REASONS.has(error.reason)
          ? { invalid: true, requeueAfterMs: config.notReadyRequeueSeconds * 1000 }
          : { invalid: true };
      }
      const message = errorMessage(error);
      void this.#d.events.emit(subject, 'Warning', 'ReconcileError', message);
      // A failed call (the apiserver busy, our own children webhook rolling during an upgrade) while
      // the children in place are exactly this generation's rendering changes nothing pods rely on:
      // Ready stays as it is and the reconcile is retried. Anything else is not Ready (fail closed).
      if (rendered && this.#childrenCurrent(policy, rendered)) {
        logger.warn(
          { policy: key, err: message },
          'reconcile failed; the children in place are current, Ready is kept while it is retried',
        );
        throw error;
      }
      await this.#writeStatus(policy, { status: 'False', reason: 'ReconcileError', message }).catch(
        () => undefined,
      );
      throw error;
    }
  }

  #subject(policy: SessionPolicyObject): EventSubject {
    return {
      apiVersion: SESSION_POLICY_API_VERSION,
      kind: SESSION_POLICY.kind,
      name: policy.metadata.name,
      namespace: policy.metadata.namespace ?? '',
      ...(policy.metadata.uid ? { uid: policy.metadata.uid } : {}),
    };
  }

  /** Every referenced Secret exists with its keys; returns their decoded data by name. */
  async #checkSecrets(
    namespace: string,
    spec: SessionPolicySpec,
  ): Promise<Map<string, Record<string, string>>> {
    const found = new Map<string, Record<string, string>>();
    const missing: string[] = [];
    const missingKeys: string[] = [];
    for (const ref of secretReferences(spec)) {
      let data = found.get(ref.name);
      if (!data) {
        try {
          const secret = await this.#d.core.readNamespacedSecret({ name: ref.name, namespace });
          data = Object.fromEntries(
            Object.entries(secret.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]),
          );
          found.set(ref.name, data);
        } catch (error) {
          if (!isNotFound(error)) throw error;
          missing.push(`Secret "${ref.name}" (${ref.usedBy}) not found in namespace ${namespace}`);
          continue;
        }
      }
      const absent = ref.keys.filter((k) => data[k] === undefined);
      if (absent.length > 0)
        missingKeys.push(`Secret "${ref.name}" (${ref.usedBy}) lacks key(s) ${absent.join(', ')}`);
    }
    if (missing.length > 0) throw new PolicyInvalidError('SecretNotFound', missing.join('; '));
    if (missingKeys.length > 0) throw new PolicyInvalidError('SecretKeyMissing', missingKeys.join('; '));
    return found;
  }

  async #bootstrapStorage(spec: SessionPolicySpec, secrets: Map<string, Record<string, string>>) {
    const storage = this.#d.storage;
    const store = spec.recording.store;
    if (!storage || !store.url.startsWith('s3://')) return;
    const location = parseS3Url(store.url)!;
    const target: StoreLocation = {
      bucket: location.bucket,
      region: store.region,
      forcePathStyle: store.forcePathStyle,
      ...(store.endpoint ? { endpoint: store.endpoint } : {}),
    };
    // Every policy writing to this bucket contributes its retention rule.
    const retention = [];
    let objectLock = false;
    for (const other of this.#policies.list()) {
      let otherSpec: SessionPolicySpec;
      try {
        otherSpec = parsePolicySpec(other);
      } catch {
        continue;
      }
      const otherStore = otherSpec.recording.store;
      const otherLocation = otherStore.url.startsWith('s3://') ? parseS3Url(otherStore.url) : undefined;
      if (!otherLocation) continue;
      const otherTarget: StoreLocation = {
        bucket: otherLocation.bucket,
        region: otherStore.region,
        forcePathStyle: otherStore.forcePathStyle,
        ...(otherStore.endpoint ? { endpoint: otherStore.endpoint } : {}),
      };
      if (storeKey(otherTarget) !== storeKey(target)) continue;
      retention.push({ prefix: otherLocation.prefix, days: otherSpec.recording.retentionDays });
    }
    if (spec.recording.objectLock) objectLock = true;
    if (!retention.some((r) => r.prefix === location.prefix)) {
      retention.push({ prefix: location.prefix, days: spec.recording.retentionDays });
    }
    const secretName = store.credentialsSecret?.name;
    const data = secretName ? secrets.get(secretName) : undefined;
    const credentials: StoreCredentials | undefined = data
      ? { accessKeyId: data.accessKeyId ?? '', secretAccessKey: data.secretAccessKey ?? '' }
      : undefined;
    try {
      await storage.ensure(target, credentials, { objectLock, retention });
    } catch (error) {
      if (error instanceof StorageProblem) throw error;
      throw new StorageProblem('StorageError', `store ${store.url}: ${errorMessage(error)}`);
    }
  }

  /** Deletes children labelled for this policy under another name (leftovers of older versions). */
  /**
   * ssh targets: the sidecar's host key Secret, generated once and never overwritten (agents pin
   * it), and the known_hosts ConfigMap agents mount, rendered from its public key.
   */
  async #ensureSshHostKey(policy: SessionPolicyObject, spec: SessionPolicySpec): Promise<void> {
    const namespace = policy.metadata.namespace ?? '';
    const name = sshHostKeySecretName(policy.metadata.name);
    const read = () => this.#d.core.readNamespacedSecret({ name, namespace });
    let secret: Awaited<ReturnType<typeof read>>;
    try {
      secret = await read();
    } catch (error) {
      if (!isNotFound(error)) throw error;
      try {
        await this.#d.core.createNamespacedSecret({ namespace, body: renderSshHostKeySecret(policy) });
      } catch (created) {
        if (!isConflict(created)) throw created;
      }
      secret = await read();
    }
    const publicKey = Buffer.from(secret.data?.[SSH_HOST_KEY_KEYS.publicKey] ?? '', 'base64').toString(
      'utf8',
    );
    if (!publicKey.trim()) throw new Error(`Secret ${name} has no ${SSH_HOST_KEY_KEYS.publicKey}`);
    await serverSideApply(this.#d.objects, renderKnownHostsConfigMap(policy, spec, publicKey));
  }

  async #pruneStale(policy: SessionPolicyObject): Promise<void> {
    const namespace = policy.metadata.namespace ?? '';
    const keep = childName(policy.metadata.name);
    const keepNetworkPolicy = this.#d.config.networkPolicy.enabled;
    const knownHosts = sshKnownHostsName(policy.metadata.name);
    for (const cm of this.#childrenOf(this.#configMaps, namespace, policy.metadata.name)) {
      if (cm.metadata?.name === knownHosts && hasSshTargets(parsePolicySpec(policy))) continue;
      if (cm.metadata?.name !== keep) await this.#deleteChild('ConfigMap', cm);
    }
    for (const np of this.#childrenOf(this.#networkPolicies, namespace, policy.metadata.name)) {
      if (np.metadata?.name !== keep || !keepNetworkPolicy) await this.#deleteChild('NetworkPolicy', np);
    }
  }

  /** The policy is gone: children labelled as its own go too (the garbage collector covers owned ones). */
  async #pruneOrphans(namespace: string, name: string): Promise<void> {
    const configMaps = this.#childrenOf(this.#configMaps, namespace, name);
    const networkPolicies = this.#childrenOf(this.#networkPolicies, namespace, name);
    if (configMaps.length === 0 && networkPolicies.length === 0) return;
    // The cache may lag behind (e.g. right after a relist): ask the apiserver before deleting.
    try {
      await this.#d.custom.getNamespacedCustomObject({
        group: SESSION_POLICY.group,
        version: SESSION_POLICY.version,
        plural: SESSION_POLICY.plural,
        namespace,
        name,
      });
      this.#queue.addAfter(policyKey(namespace, name), 1000);
      return;
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
    for (const cm of configMaps) await this.#deleteChild('ConfigMap', cm);
    for (const np of networkPolicies) await this.#deleteChild('NetworkPolicy', np);
  }

  /**
   * Ready for this very generation, and the cached ConfigMap and NetworkPolicy carry exactly what this
   * reconcile rendered (data, spec): what an apply would have written is already in place.
   */
  #childrenCurrent(policy: SessionPolicyObject, rendered: RenderedChildren): boolean {
    const status = (policy.status ?? {}) as PolicyStatus;
    const ready = findCondition(status.conditions, READY);
    const generation = policy.metadata.generation;
    if (ready?.status !== 'True' || generation === undefined || status.observedGeneration !== generation)
      return false;
    const namespace = policy.metadata.namespace ?? '';
    const name = childName(policy.metadata.name);
    const cm = this.#configMaps.get(name, namespace);
    if (!cm || !isDeepStrictEqual(cm.data ?? {}, rendered.configMap.data ?? {})) return false;
    if (!rendered.networkPolicy) return true;
    const np = this.#networkPolicies.get(name, namespace);
    return np !== undefined && isDeepStrictEqual(np.spec, rendered.networkPolicy.spec);
  }

  #childrenOf<T extends ChildObject>(
    informer: ResilientInformer<T>,
    namespace: string,
    policyName: string,
  ): T[] {
    return informer.list(namespace).filter((o) => o.metadata?.labels?.[LABELS.policy] === policyName);
  }

  async #deleteChild(kind: 'ConfigMap' | 'NetworkPolicy', object: ChildObject): Promise<void> {
    const name = object.metadata?.name ?? '';
    const namespace = object.metadata?.namespace ?? '';
    // The uid precondition keeps us from deleting a newer object of the same name.
    const body = object.metadata?.uid ? { preconditions: { uid: object.metadata.uid } } : {};
    try {
      if (kind === 'ConfigMap') await this.#d.core.deleteNamespacedConfigMap({ name, namespace, body });
      else await this.#d.networking.deleteNamespacedNetworkPolicy({ name, namespace, body });
      this.#d.logger.info({ kind, name, namespace }, 'pruned stale child');
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
  }

  /** Writes status through the subresource when it differs; true when Ready changed or a new generation was observed. */
  async #writeStatus(
    policy: SessionPolicyObject,
    ready: { status: 'True' | 'False'; reason: string; message: string },
  ): Promise<boolean> {
    const current = (policy.status ?? {}) as PolicyStatus;
    const generation = policy.metadata.generation;
    const conditions = setCondition(
      current.conditions,
      { type: READY, ...ready, ...(generation !== undefined ? { observedGeneration: generation } : {}) },
      new Date(),
    );
    const next: PolicyStatus = {
      ...(generation !== undefined ? { observedGeneration: generation } : {}),
      conditions,
      ...(ready.status === 'True'
        ? {
            configMapName: childName(policy.metadata.name),
            ...(this.#d.config.networkPolicy.enabled
              ? { networkPolicyName: childName(policy.metadata.name) }
              : {}),
          }
        : {
            ...(current.configMapName ? { configMapName: current.configMapName } : {}),
            ...(current.networkPolicyName ? { networkPolicyName: current.networkPolicyName } : {}),
          }),
    };
    if (canonicalJson(next) === canonicalJson(current)) return false;
    const before = findCondition(current.conditions, READY);
    try {
      await this.#d.custom.patchNamespacedCustomObjectStatus({
        group: SESSION_POLICY.group,
        version: SESSION_POLICY.version,
        plural: SESSION_POLICY.plural,
        namespace: policy.metadata.namespace ?? '',
        name: policy.metadata.name,
        body: [
          // Only for the generation we rendered; a newer one is on its way through the informer.
          ...(generation !== undefined
            ? [{ op: 'test', path: '/metadata/generation', value: generation }]
            : []),
          { op: 'add', path: '/status', value: next },
        ],
      });
    } catch (error) {
      if (isStaleGenerationError(error)) {
        this.#d.logger.debug(
          { policy: policy.metadata.name },
          'policy changed meanwhile; status left to the next pass',
        );
        this.#queue.addAfter(policyKey(policy.metadata.namespace, policy.metadata.name), 1000);
        return false;
      }
      throw error;
    }
    return before?.status !== ready.status || current.observedGeneration !== generation;
  }
}

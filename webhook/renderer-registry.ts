// The registry of rendering configs that live webhook replicas use: one ConfigMap per hash in the
// system namespace (chaperone-renderer-<hash>), published before a replica reports ready, its
// last-seen annotation refreshed every minute by every replica rendering with it, pruned by any
// replica once nobody vouched for it for an hour. The validating call reads it (live, with a cache of
// seconds) when a pod was rendered by a replica with another config: see handlers/pods.ts.
// Trust: only the webhook's service account and cluster admins may write ConfigMaps in the system
// namespace (charts/chaperone/templates/rbac-webhook.yaml); the content must hash to the name.
import {
  CoreV1Api,
  type KubeConfig,
  PatchStrategy,
  setHeaderOptions,
  type V1ConfigMap,
} from '@kubernetes/client-node';
import { isStatus } from './cluster.ts';
import { RENDERER_REGISTRY } from './constants.ts';
import { parseRendering, type Rendering, renderingHash, renderingJson } from './rendering.ts';

export interface PublishedRendering {
  rendering: Rendering;
  /** When a live replica last said it renders with this config. */
  seenAt: Date;
}

/** What the validating call needs: the rendering a hash names, or undefined when none is published. */
export interface RendererLookup {
  lookup(hash: string): Promise<PublishedRendering | undefined>;
}

export interface RendererRegistry extends RendererLookup {
  /** This replica's rendering hash. */
  hash: string;
  /** Resolves once this replica's rendering is published (readiness waits for it). */
  ready: Promise<void>;
  stop(): void;
}

export interface RendererRegistryOptions {
  /** How often this replica refreshes its last-seen time and prunes (default 60 s). */
  refreshMs?: number;
  /** Not seen for this long: deleted by any replica (default 1 h). */
  pruneAfterMs?: number;
  /** How long a lookup's answer is reused (default 5 s). */
  cacheMs?: number;
  now?: () => Date;
  log?: (msg: string) => void;
}

export function rendererConfigMapName(hash: string): string {
  return `${RENDERER_REGISTRY.namePrefix}${hash}`;
}

/** The ConfigMap a replica publishes for its rendering. */
export function rendererConfigMap(namespace: string, rendering: Rendering, seenAt: Date): V1ConfigMap {
  const hash = renderingHash(rendering);
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: {
      name: rendererConfigMapName(hash),
      namespace,
      labels: {
        [RENDERER_REGISTRY.label.key]: RENDERER_REGISTRY.label.value,
        'app.kubernetes.io/part-of': 'chaperone',
        'app.kubernetes.io/component': 'webhook',
      },
      annotations: { [RENDERER_REGISTRY.seenAnnotation]: seenAt.toISOString() },
    },
    data: { [RENDERER_REGISTRY.dataKey]: renderingJson(rendering) },
  };
}

/** A registry ConfigMap read back: undefined unless its content hashes to its name and it has a valid time. */
export function readRendererConfigMap(cm: V1ConfigMap, hash: string): PublishedRendering | undefined {
  const json = cm.data?.[RENDERER_REGISTRY.dataKey];
  const seen = cm.metadata?.annotations?.[RENDERER_REGISTRY.seenAnnotation];
  if (json === undefined || seen === undefined) return undefined;
  const seenAt = new Date(seen);
  if (Number.isNaN(seenAt.getTime())) return undefined;
  const rendering = parseRendering(json, hash);
  return rendering ? { rendering, seenAt } : undefined;
}

export function kubeRendererRegistry(
  kc: KubeConfig,
  namespace: string,
  rendering: Rendering,
  options: RendererRegistryOptions = {},
): RendererRegistry {
  const core = kc.makeApiClient(CoreV1Api);
  const now = options.now ?? (() => new Date());
  const log = options.log ?? (() => {});
  const refreshMs = options.refreshMs ?? 60_000;
  const pruneAfterMs = options.pruneAfterMs ?? 3_600_000;
  const cacheMs = options.cacheMs ?? 5_000;
  const hash = renderingHash(rendering);
  const name = rendererConfigMapName(hash);
  const cache = new Map<string, { at: number; value: PublishedRendering | undefined }>();

  async function publish(): Promise<void> {
    const seen = now().toISOString();
    try {
      await core.patchNamespacedConfigMap(
        {
          name,
          namespace,
          body: { metadata: { annotations: { [RENDERER_REGISTRY.seenAnnotation]: seen } } },
        },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      );
      return;
    } catch (error) {
      if (!isStatus(error, 404)) throw error;
    }
    try {
      await core.createNamespacedConfigMap({
        namespace,
        body: rendererConfigMap(namespace, rendering, now()),
      });
    } catch (error) {
      // Another replica with the same rendering created it in between: its time is as good as ours.
      if (!isStatus(error, 409)) throw error;
    }
  }

  async function prune(): Promise<void> {
    const list = await core.listNamespacedConfigMap({
      namespace,
      labelSelector: `${RENDERER_REGISTRY.label.key}=${RENDERER_REGISTRY.label.value}`,
    });
    for (const cm of list.items) {
      const cmName = cm.metadata?.name ?? '';
      if (cmName === name) continue;
      const seenText = cm.metadata?.annotations?.[RENDERER_REGISTRY.seenAnnotation] ?? '';
      const seen = new Date(seenText);
      const stale = Number.isNaN(seen.getTime()) || now().getTime() - seen.getTime() > pruneAfterMs;
      if (!stale) continue;
      try {
        // Precondition: a replica that refreshed it since the list keeps it.
        await core.deleteNamespacedConfigMap({
          name: cmName,
          namespace,
          body: { preconditions: { resourceVersion: cm.metadata?.resourceVersion } },
        });
        log(`renderer registry: pruned ${cmName} (last seen ${seenText || 'never'})`);
      } catch (error) {
        if (!isStatus(error, 404) && !isStatus(error, 409)) throw error;
      }
    }
  }

  let timer: NodeJS.Timeout | undefined;
  const tick = () => {
    void publish()
      .then(prune)
      .catch((error: unknown) =>
        log(`renderer registry: refresh failed: ${error instanceof Error ? error.message : String(error)}`),
      );
  };
  const ready = publish().then(() => {
    timer = setInterval(tick, refreshMs);
    timer.unref();
    void prune().catch((error: unknown) =>
      log(`renderer registry: prune failed: ${error instanceof Error ? error.message : String(error)}`),
    );
  });

  return {
    hash,
    ready,
    stop() {
      if (timer) clearInterval(timer);
    },
    async lookup(wanted) {
      const at = Date.now();
      const hit = cache.get(wanted);
      if (hit && at - hit.at < cacheMs) return hit.value;
      let value: PublishedRendering | undefined;
      try {
        const cm = await core.readNamespacedConfigMap({ name: rendererConfigMapName(wanted), namespace });
        value = readRendererConfigMap(cm, wanted);
      } catch (error) {
        if (!isStatus(error, 404)) throw error;
      }
      if (cache.size > 64) cache.clear();
      cache.set(wanted, { at, value });
      return value;
    },
  };
}

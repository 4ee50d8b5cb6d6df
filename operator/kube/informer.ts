// An informer that does not give up. client-node's ListWatch re-watches after a 410 or a closed
// watch, but on any other error (apiserver down, connection reset, 5xx) it calls its error handlers
// and stops for good. This wrapper then starts a fresh ListWatch after an exponential backoff: a
// full relist, whose result is diffed against the last known objects so deletions that happened
// while the informer was down are still delivered.
import {
  type KubeConfig,
  type KubernetesListObject,
  type KubernetesObject,
  ListWatch,
  Watch,
} from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { errorMessage } from './errors.ts';

export type InformerEvent = 'add' | 'update' | 'delete';

export interface ResilientInformerOptions<T extends KubernetesObject> {
  name: string;
  kubeConfig: KubeConfig;
  /** API path for the watch, e.g. /api/v1/configmaps. */
  path: string;
  list: () => Promise<KubernetesListObject<T>>;
  labelSelector?: string;
  fieldSelector?: string;
  onEvent: (event: InformerEvent, object: T) => void;
  logger: Logger;
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** Called on each restart after an error (for metrics). */
  onRestart?: () => void;
}

function keyOf(object: KubernetesObject): string {
  return `${object.metadata?.namespace ?? ''}/${object.metadata?.name ?? ''}`;
}

/** How long an informer must stay healthy before its backoff starts from the beginning again. */
const HEALTHY_RESET_MS = 10_000;

export class ResilientInformer<T extends KubernetesObject> {
  readonly #options: ResilientInformerOptions<T>;
  #current: ListWatch<T> | undefined;
  #generation = 0;
  #attempt = 0;
  #startedAt = 0;
  #stopped = true;
  #retryTimer: NodeJS.Timeout | undefined;
  /** Objects as last known, kept across restarts to find deletions missed while down. */
  #known = new Map<string, T>();
  #synced = false;
  #syncWaiters: (() => void)[] = [];

  constructor(options: ResilientInformerOptions<T>) {
    this.#options = options;
  }

  get synced(): boolean {
    return this.#synced;
  }

  /** Starts listing and watching; resolves once the first list has been delivered. */
  async start(): Promise<void> {
    this.#stopped = false;
    void this.#run();
    await this.waitForSync();
  }

  waitForSync(): Promise<void> {
    if (this.#synced) return Promise.resolve();
    return new Promise((resolve) => this.#syncWaiters.push(resolve));
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#retryTimer);
    this.#generation += 1;
    const current = this.#current;
    this.#current = undefined;
    await current?.stop();
    for (const resolve of this.#syncWaiters.splice(0)) resolve();
  }

  get(name: string, namespace?: string): T | undefined {
    return this.#known.get(`${namespace ?? ''}/${name}`);
  }

  list(namespace?: string): T[] {
    const all = [...this.#known.values()];
    return namespace === undefined ? all : all.filter((o) => o.metadata?.namespace === namespace);
  }

  async #run(): Promise<void> {
    if (this.#stopped) return;
    const generation = ++this.#generation;
    const { kubeConfig, path, labelSelector, fieldSelector, logger, name } = this.#options;
    let failed = false;
    let listed = false;
    const seen = new Set<string>();
    // Items of the relist are collected first: delete events for objects that vanished while the
    // informer was down go out before the relisted objects are delivered.
    const listFn = async () => {
      const list = await this.#options.list();
      listed = true;
      for (const item of list.items) seen.add(keyOf(item));
      for (const [key, object] of this.#known) {
        if (!seen.has(key)) {
          this.#known.delete(key);
          this.#options.onEvent('delete', object);
        }
      }
      return list;
    };
    const listWatch = new ListWatch<T>(
      path,
      new Watch(kubeConfig),
      listFn,
      false,
      labelSelector,
      fieldSelector,
    );
    const current = () => generation === this.#generation && !this.#stopped;
    listWatch.on('add', (object) => {
      if (!current()) return;
      const key = keyOf(object);
      const existed = this.#known.has(key);
      this.#known.set(key, object);
      this.#options.onEvent(existed ? 'update' : 'add', object);
    });
    listWatch.on('update', (object) => {
      if (!current()) return;
      this.#known.set(keyOf(object), object);
      this.#options.onEvent('update', object);
    });
    listWatch.on('delete', (object) => {
      if (!current()) return;
      this.#known.delete(keyOf(object));
      this.#options.onEvent('delete', object);
    });
    const onError = (error: unknown) => {
      if (failed || !current()) return;
      failed = true;
      this.#scheduleRestart(generation, error);
    };
    listWatch.on('error', onError);
    this.#current = listWatch;
    this.#startedAt = Date.now();
    try {
      await listWatch.start();
    } catch (error) {
      onError(error);
    }
    if (listed && !failed && current()) {
      if (!this.#synced) logger.debug({ informer: name }, 'informer synced');
      this.#synced = true;
      for (const resolve of this.#syncWaiters.splice(0)) resolve();
    }
  }

  #scheduleRestart(generation: number, error: unknown): void {
    if (this.#stopped || generation !== this.#generation) return;
    if (Date.now() - this.#startedAt > HEALTHY_RESET_MS) this.#attempt = 0;
    const base = this.#options.baseDelayMs ?? 500;
    const max = this.#options.maxDelayMs ?? 30_000;
    const delay = Math.min(max, base * 2 ** this.#attempt);
    this.#attempt += 1;
    this.#options.logger.warn(
      {
        informer: this.#options.name,
        err: errorMessage(error),
        retryInMs: delay,
      },
      'informer failed; restarting with a fresh list',
    );
    const previous = this.#current;
    this.#current = undefined;
    void previous?.stop();
    this.#retryTimer = setTimeout(() => {
      this.#options.onRestart?.();
      void this.#run();
    }, delay);
  }
}

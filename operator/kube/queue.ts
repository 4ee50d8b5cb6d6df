// A de-duplicating work queue keyed by namespace/name, like client-go's rate-limited workqueue:
// a key is queued at most once, handled by at most one worker at a time (an add while it is being
// handled marks it dirty and it runs again afterwards), and failures back off exponentially per key.

export interface HandlerResult {
  /** Handle the key again after this delay even though it succeeded (e.g. certificate renewal). */
  requeueAfterMs?: number;
}

export type KeyHandler = (key: string) => Promise<HandlerResult | undefined> | Promise<void>;

export interface WorkQueueOptions {
  concurrency?: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** Called with the number of keys waiting (not counting delayed or in-flight ones). */
  onDepth?: (depth: number) => void;
  /** Called when a handler throws, with the delay before the retry. */
  onError?: (key: string, error: unknown, retryInMs: number) => void;
}

export class WorkQueue {
  readonly #handler: KeyHandler;
  readonly #concurrency: number;
  readonly #baseDelayMs: number;
  readonly #maxDelayMs: number;
  readonly #onDepth: ((depth: number) => void) | undefined;
  readonly #onError: WorkQueueOptions['onError'];
  readonly #queue: string[] = [];
  readonly #queued = new Set<string>();
  readonly #processing = new Set<string>();
  readonly #dirty = new Set<string>();
  readonly #failures = new Map<string, number>();
  readonly #timers = new Map<string, { due: number; timer: NodeJS.Timeout }>();
  readonly #inFlight = new Set<Promise<void>>();
  #running = false;
  #idleWaiters: (() => void)[] = [];

  constructor(handler: KeyHandler, options: WorkQueueOptions = {}) {
    this.#handler = handler;
    this.#concurrency = options.concurrency ?? 2;
    this.#baseDelayMs = options.baseDelayMs ?? 200;
    this.#maxDelayMs = options.maxDelayMs ?? 60_000;
    this.#onDepth = options.onDepth;
    this.#onError = options.onError;
  }

  get depth(): number {
    return this.#queue.length;
  }

  start(): void {
    this.#running = true;
    this.#pump();
  }

  /** Stops taking keys, cancels delayed ones and waits for in-flight handlers. */
  async stop(): Promise<void> {
    this.#running = false;
    for (const { timer } of this.#timers.values()) clearTimeout(timer);
    this.#timers.clear();
    await Promise.allSettled([...this.#inFlight]);
  }

  add(key: string): void {
    if (this.#processing.has(key)) {
      this.#dirty.add(key);
      return;
    }
    if (this.#queued.has(key)) return;
    this.#queued.add(key);
    this.#queue.push(key);
    this.#onDepth?.(this.#queue.length);
    this.#pump();
  }

  /** Adds the key after a delay; an earlier pending delay for the same key wins. */
  addAfter(key: string, delayMs: number): void {
    if (delayMs <= 0) {
      this.add(key);
      return;
    }
    const due = Date.now() + delayMs;
    const pending = this.#timers.get(key);
    if (pending && pending.due <= due) return;
    if (pending) clearTimeout(pending.timer);
    const timer = setTimeout(() => {
      this.#timers.delete(key);
      if (this.#running) this.add(key);
    }, delayMs);
    timer.unref();
    this.#timers.set(key, { due, timer });
  }

  /** Resolves when nothing is queued or in flight (delayed keys do not count). For tests. */
  async idle(): Promise<void> {
    if (this.#queue.length === 0 && this.#processing.size === 0) return;
    await new Promise<void>((resolve) => this.#idleWaiters.push(resolve));
  }

  #backoff(failures: number): number {
    return Math.min(this.#maxDelayMs, this.#baseDelayMs * 2 ** Math.max(0, failures - 1));
  }

  #pump(): void {
    while (this.#running && this.#processing.size < this.#concurrency && this.#queue.length > 0) {
      const key = this.#queue.shift()!;
      this.#queued.delete(key);
      this.#onDepth?.(this.#queue.length);
      this.#processing.add(key);
      const work = this.#process(key);
      this.#inFlight.add(work);
      void work.finally(() => this.#inFlight.delete(work));
    }
    if (this.#queue.length === 0 && this.#processing.size === 0) {
      const waiters = this.#idleWaiters;
      this.#idleWaiters = [];
      for (const resolve of waiters) resolve();
    }
  }

  async #process(key: string): Promise<void> {
    try {
      const result = (await this.#handler(key)) as HandlerResult | undefined;
      this.#failures.delete(key);
      if (result?.requeueAfterMs !== undefined) this.addAfter(key, result.requeueAfterMs);
    } catch (error) {
      const failures = (this.#failures.get(key) ?? 0) + 1;
      this.#failures.set(key, failures);
      const delay = this.#backoff(failures);
      this.#onError?.(key, error, delay);
      this.addAfter(key, delay);
    } finally {
      this.#processing.delete(key);
      if (this.#dirty.delete(key)) this.add(key);
      this.#pump();
    }
  }
}

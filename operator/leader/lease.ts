// Leader election on a coordination.k8s.io/v1 Lease, after client-go's leaderelection: a candidate
// takes the lease when it is free or when the holder has not renewed it for leaseDuration as
// measured on the candidate's own clock (observed time, so clocks need not agree); the leader renews
// every retryPeriod and steps down when it could not renew for renewDeadline; stop() releases the
// lease so a successor need not wait for expiry.
import type { CoordinationV1Api, V1Lease, V1LeaseSpec } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { errorMessage, isConflict, isNotFound } from '../kube/errors.ts';

export interface LeaderElectionOptions {
  api: CoordinationV1Api;
  namespace: string;
  name: string;
  identity: string;
  leaseDurationSeconds: number;
  renewDeadlineSeconds: number;
  retryPeriodSeconds: number;
  logger: Logger;
  /** Called on becoming leader; the signal aborts when leadership is lost or the elector stops. */
  onStartedLeading: (signal: AbortSignal) => void | Promise<void>;
  /** Called after leadership ended (lost or released). */
  onStoppedLeading: () => void | Promise<void>;
}

/** A MicroTime as the apiserver writes it: RFC 3339 with exactly six fractional digits. */
export function microTime(date: Date): string {
  return date.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

function recordKey(spec: V1LeaseSpec | undefined): string {
  return JSON.stringify([
    spec?.holderIdentity ?? '',
    String(spec?.renewTime ?? ''),
    spec?.leaseTransitions ?? 0,
  ]);
}

export class LeaderElector {
  readonly #o: LeaderElectionOptions;
  #observedRecord = '';
  #observedAt = 0;
  #leading = false;
  #lastRenew = 0;
  #leadership: AbortController | undefined;
  #stopped = false;
  #wake: (() => void) | undefined;
  #loop: Promise<void> | undefined;

  constructor(options: LeaderElectionOptions) {
    this.#o = options;
  }

  get isLeader(): boolean {
    return this.#leading;
  }

  /** Starts campaigning in the background. */
  start(): void {
    this.#stopped = false;
    this.#loop ??= this.#run();
  }

  /** Stops campaigning; a leader steps down and releases the lease. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#wake?.();
    await this.#loop;
    this.#loop = undefined;
  }

  async #run(): Promise<void> {
    while (!this.#stopped) {
      let ok = false;
      try {
        ok = await this.#tryAcquireOrRenew();
      } catch (error) {
        this.#o.logger.warn({ err: errorMessage(error) }, 'lease update failed');
      }
      if (this.#stopped) break;
      const now = Date.now();
      if (ok) {
        this.#lastRenew = now;
        if (!this.#leading) await this.#startLeading();
      } else if (this.#leading && now - this.#lastRenew > this.#o.renewDeadlineSeconds * 1000) {
        this.#o.logger.warn('could not renew the lease in time; stepping down');
        await this.#stopLeading();
      }
      // Candidates add jitter so several of them do not hit the apiserver in lockstep.
      const wait = this.#o.retryPeriodSeconds * 1000 * (this.#leading ? 1 : 1 + Math.random() * 0.2);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, wait);
        this.#wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    if (this.#leading) {
      // Controllers stop before the lease is given up, so two leaders never act at once.
      await this.#stopLeading();
      await this.#release();
    }
  }

  async #startLeading(): Promise<void> {
    this.#leading = true;
    this.#leadership = new AbortController();
    this.#o.logger.info(
      { lease: `${this.#o.namespace}/${this.#o.name}`, identity: this.#o.identity },
      'became leader',
    );
    try {
      await this.#o.onStartedLeading(this.#leadership.signal);
    } catch (error) {
      this.#o.logger.error({ err: errorMessage(error) }, 'onStartedLeading failed');
    }
  }

  async #stopLeading(): Promise<void> {
    this.#leading = false;
    this.#leadership?.abort();
    this.#leadership = undefined;
    this.#o.logger.info({ identity: this.#o.identity }, 'stopped leading');
    try {
      await this.#o.onStoppedLeading();
    } catch (error) {
      this.#o.logger.error({ err: errorMessage(error) }, 'onStoppedLeading failed');
    }
  }

  async #tryAcquireOrRenew(): Promise<boolean> {
    const { api, namespace, name, identity, leaseDurationSeconds } = this.#o;
    const now = new Date();
    let lease: V1Lease;
    try {
      lease = await api.readNamespacedLease({ name, namespace });
    } catch (error) {
      if (!isNotFound(error)) throw error;
      try {
        await api.createNamespacedLease({
          namespace,
          body: {
            metadata: { name, namespace },
            spec: {
              holderIdentity: identity,
              leaseDurationSeconds,
              acquireTime: microTime(now) as unknown as Date,
              renewTime: microTime(now) as unknown as Date,
              leaseTransitions: 0,
            },
          },
        });
      } catch (createError) {
        if (isConflict(createError)) return false;
        throw createError;
      }
      this.#observe(undefined, Date.now());
      return true;
    }
    const spec = lease.spec ?? {};
    const key = recordKey(spec);
    if (key !== this.#observedRecord) {
      this.#observedRecord = key;
      this.#observedAt = Date.now();
    }
    const holder = spec.holderIdentity ?? '';
    const duration = (spec.leaseDurationSeconds ?? leaseDurationSeconds) * 1000;
    const heldByOther = holder !== '' && holder !== identity;
    if (heldByOther && this.#observedAt + duration > Date.now()) return false;

    const renewing = holder === identity;
    const next: V1LeaseSpec = {
      holderIdentity: identity,
      leaseDurationSeconds,
      acquireTime: (renewing && spec.acquireTime ? spec.acquireTime : microTime(now)) as unknown as Date,
      renewTime: microTime(now) as unknown as Date,
      leaseTransitions: (spec.leaseTransitions ?? 0) + (renewing ? 0 : 1),
    };
    try {
      const updated = await api.replaceNamespacedLease({
        name,
        namespace,
        body: { metadata: { ...lease.metadata, name, namespace }, spec: next },
      });
      this.#observe(updated.spec, Date.now());
      if (!renewing) this.#o.logger.info({ previousHolder: holder || undefined }, 'acquired the lease');
      return true;
    } catch (error) {
      if (isConflict(error)) return false;
      throw error;
    }
  }

  #observe(spec: V1LeaseSpec | undefined, at: number): void {
    this.#observedRecord = recordKey(spec);
    this.#observedAt = at;
  }

  /** Gives the lease up: holder cleared and a one-second duration, as client-go does. */
  async #release(): Promise<void> {
    const { api, namespace, name, identity } = this.#o;
    try {
      const lease = await api.readNamespacedLease({ name, namespace });
      if (lease.spec?.holderIdentity !== identity) return;
      const now = microTime(new Date()) as unknown as Date;
      await api.replaceNamespacedLease({
        name,
        namespace,
        body: {
          metadata: lease.metadata,
          spec: {
            leaseDurationSeconds: 1,
            acquireTime: now,
            renewTime: now,
            leaseTransitions: lease.spec.leaseTransitions,
          },
        },
      });
      this.#o.logger.info('released the lease');
    } catch (error) {
      this.#o.logger.warn({ err: errorMessage(error) }, 'cannot release the lease');
    }
  }
}

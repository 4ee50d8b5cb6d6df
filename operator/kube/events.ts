// Kubernetes Events (core/v1) about the objects the operator handles. Repeats of the same event
// within a window bump count and lastTimestamp of the existing Event instead of creating new ones,
// so a policy that fails on every retry does not flood the namespace. Never throws: an event that
// cannot be written is logged and dropped.
import { randomBytes } from 'node:crypto';
import { type CoreV1Api, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { errorMessage, isNotFound } from './errors.ts';

export interface EventSubject {
  apiVersion: string;
  kind: string;
  name: string;
  namespace: string;
  uid?: string;
  resourceVersion?: string;
}

interface Recent {
  name: string;
  count: number;
  at: number;
}

const REPEAT_WINDOW_MS = 10 * 60_000;
const MAX_REMEMBERED = 1000;

export class EventRecorder {
  readonly #core: CoreV1Api;
  readonly #component: string;
  readonly #instance: string;
  readonly #logger: Logger;
  readonly #recent = new Map<string, Recent>();

  constructor(core: CoreV1Api, options: { component: string; instance: string; logger: Logger }) {
    this.#core = core;
    this.#component = options.component;
    this.#instance = options.instance;
    this.#logger = options.logger;
  }

  async emit(
    subject: EventSubject,
    type: 'Normal' | 'Warning',
    reason: string,
    message: string,
  ): Promise<void> {
    const key = [subject.namespace, subject.kind, subject.name, subject.uid, type, reason, message].join(
      '\u0000',
    );
    const now = new Date();
    const recent = this.#recent.get(key);
    try {
      if (recent && now.getTime() - recent.at < REPEAT_WINDOW_MS) {
        try {
          await this.#core.patchNamespacedEvent(
            {
              name: recent.name,
              namespace: subject.namespace,
              body: { count: recent.count + 1, lastTimestamp: now },
            },
            setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
          );
          recent.count += 1;
          recent.at = now.getTime();
          return;
        } catch (error) {
          if (!isNotFound(error)) throw error;
        }
      }
      const name = `${subject.name}.${randomBytes(8).toString('hex')}`;
      await this.#core.createNamespacedEvent({
        namespace: subject.namespace,
        body: {
          metadata: { name, namespace: subject.namespace },
          involvedObject: {
            apiVersion: subject.apiVersion,
            kind: subject.kind,
            name: subject.name,
            namespace: subject.namespace,
            ...(subject.uid ? { uid: subject.uid } : {}),
            ...(subject.resourceVersion ? { resourceVersion: subject.resourceVersion } : {}),
          },
          type,
          reason,
          message: message.slice(0, 1024),
          count: 1,
          firstTimestamp: now,
          lastTimestamp: now,
          source: { component: this.#component },
          reportingComponent: this.#component,
          reportingInstance: this.#instance,
        },
      });
      this.#recent.set(key, { name, count: 1, at: now.getTime() });
      if (this.#recent.size > MAX_REMEMBERED) {
        const oldest = this.#recent.keys().next().value;
        if (oldest !== undefined) this.#recent.delete(oldest);
      }
    } catch (error) {
      this.#logger.warn({ err: errorMessage(error), reason }, 'cannot record event');
    }
  }
}

// Policy hits go to the log (always) and to a Slack-compatible webhook (when configured), sent in
// the background: send() never waits for the network. While the webhook is down, alerts queue up to
// a bound and the oldest are dropped, with the count logged: alerts are notifications, the
// recording is the evidence, and the data path must never stall on a chat server.
import { readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import type { SidecarConfig } from '../../config/index.ts';
import { slackPayload } from './slack.ts';
import type { Alert, AlertSink } from './types.ts';

export interface AlertSinkOptions {
  fetch?: typeof fetch;
  /** Alerts kept while the webhook is unreachable. */
  maxQueue?: number;
  /** Delivery attempts per alert before it is dropped. */
  maxAttempts?: number;
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  requestTimeoutMs?: number;
  /** How long close() keeps trying to deliver what is queued. */
  closeTimeoutMs?: number;
}

interface Queued {
  alert: Alert;
  attempts: number;
}

function webhookUrl(config: NonNullable<SidecarConfig['alerts']>, logger: Logger): string | undefined {
  if (config.webhookUrl) return config.webhookUrl;
  if (!config.webhookUrlFile) return undefined;
  try {
    const url = readFileSync(config.webhookUrlFile, 'utf8').trim();
    new URL(url);
    return url;
  } catch (err) {
    // Never log the URL itself: incoming-webhook URLs are credentials.
    logger.error(
      { file: config.webhookUrlFile, err: (err as Error).message },
      'alert webhook URL file unreadable or invalid; alerts are only logged',
    );
    return undefined;
  }
}

/** Permanent failures: retrying the same payload cannot succeed. */
function isPermanent(status: number): boolean {
  return status >= 400 && status < 500 && status !== 408 && status !== 429;
}

export function createAlertSink(
  config: SidecarConfig['alerts'],
  logger: Logger,
  options: AlertSinkOptions = {},
): AlertSink {
  const doFetch = options.fetch ?? fetch;
  const maxQueue = options.maxQueue ?? 1000;
  const maxAttempts = options.maxAttempts ?? 8;
  const initialBackoffMs = options.initialBackoffMs ?? 500;
  const maxBackoffMs = options.maxBackoffMs ?? 30_000;
  const requestTimeoutMs = options.requestTimeoutMs ?? 5000;
  const closeTimeoutMs = options.closeTimeoutMs ?? 3000;

  const url = config ? webhookUrl(config, logger) : undefined;
  const kinds = new Set(config?.on ?? []);
  const queue: Queued[] = [];
  let dropped = 0;
  let droppedSinceDelivery = 0;
  let pumping: Promise<void> | undefined;
  let inFlight: Queued | undefined;
  let closing = false;
  let stopped = false;
  let wake: (() => void) | undefined;
  let backoffTimer: NodeJS.Timeout | undefined;

  const drop = (item: Queued, why: string) => {
    dropped++;
    droppedSinceDelivery++;
    // Log the first drops and then every power of ten, so an outage cannot flood the log.
    if (Math.log10(dropped) % 1 === 0) {
      logger.warn(
        { droppedTotal: dropped, kind: item.alert.kind, reason: why },
        'alert dropped without delivery to the webhook',
      );
    }
  };

  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      wake = resolve;
      backoffTimer = setTimeout(resolve, ms);
      backoffTimer.unref();
    });

  async function deliver(item: Queued): Promise<'ok' | 'retry' | 'permanent'> {
    try {
      const res = await doFetch(url!, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(slackPayload(item.alert)),
        signal: AbortSignal.timeout(requestTimeoutMs),
      });
      await res.arrayBuffer().catch(() => undefined);
      if (res.ok) return 'ok';
      return isPermanent(res.status) ? 'permanent' : 'retry';
    } catch {
      return 'retry';
    }
  }

  async function pump(): Promise<void> {
    let backoff = initialBackoffMs;
    while (queue.length > 0 && !stopped) {
      const item = queue[0]!;
      item.attempts++;
      inFlight = item;
      const outcome = await deliver(item);
      inFlight = undefined;
      const index = queue.indexOf(item); // close() may have emptied the queue meanwhile
      if (outcome === 'ok') {
        if (index >= 0) queue.splice(index, 1);
        if (droppedSinceDelivery > 0) {
          logger.warn(
            { dropped: droppedSinceDelivery },
            'alert webhook reachable again; some alerts were dropped',
          );
          droppedSinceDelivery = 0;
        }
        backoff = initialBackoffMs;
        continue;
      }
      if (outcome === 'permanent' || item.attempts >= maxAttempts) {
        if (index >= 0) {
          queue.splice(index, 1);
          drop(
            item,
            outcome === 'permanent'
              ? 'webhook rejected the alert'
              : `gave up after ${item.attempts} attempts`,
          );
        }
        continue;
      }
      if (closing) break;
      await sleep(backoff);
      backoff = Math.min(backoff * 2, maxBackoffMs);
    }
  }

  const startPump = () => {
    if (pumping || stopped) return;
    pumping = pump()
      .catch((err: unknown) => logger.error({ err: (err as Error).message }, 'alert delivery loop failed'))
      .finally(() => {
        pumping = undefined;
        if (queue.length > 0 && !closing && !stopped) startPump();
      });
  };

  return {
    send(alert) {
      try {
        logger.warn(
          {
            alert: {
              ...alert,
              statement:
                alert.statement && alert.statement.length > 1000
                  ? `${alert.statement.slice(0, 1000)}…`
                  : alert.statement,
            },
          },
          `policy ${alert.kind}: ${alert.message}`,
        );
        if (!url || closing || !kinds.has(alert.kind)) return;
        if (queue.length >= maxQueue) {
          // The oldest not being sent right now (an in-flight one may still arrive).
          const victim = queue[0] === inFlight && queue.length > 1 ? 1 : 0;
          const [oldest] = queue.splice(victim, 1);
          drop(oldest!, 'queue full while the webhook is unreachable');
        }
        queue.push({ alert, attempts: 0 });
        startPump();
      } catch (err) {
        logger.error({ err: (err as Error).message }, 'alert could not be queued');
      }
    },
    async close() {
      closing = true;
      if (url && queue.length > 0) {
        // One more prompt attempt for what is queued, without the backoff sleeps.
        clearTimeout(backoffTimer);
        wake?.();
        const deadline = new Promise<void>((resolve) => setTimeout(resolve, closeTimeoutMs).unref());
        const flush = (async () => {
          // The running loop stops at its next failure (closing); then one more pass, no sleeps.
          while (pumping) await pumping;
          await pump();
        })();
        await Promise.race([flush, deadline]);
      }
      stopped = true;
      clearTimeout(backoffTimer);
      wake?.();
      if (queue.length > 0) {
        logger.warn(
          { undelivered: queue.length, droppedTotal: dropped },
          'alert sink closed with undelivered alerts',
        );
      }
      queue.length = 0;
    },
  };
}

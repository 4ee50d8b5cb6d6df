// Prometheus metrics of the operator, on a registry of its own so several operators (tests) can
// live in one process.
import { Counter, Gauge, Histogram, Registry } from 'prom-client';

export class OperatorMetrics {
  readonly registry = new Registry();
  readonly reconciles = new Counter({
    name: 'chaperone_operator_reconcile_total',
    help: 'Reconciles by controller and result (success, invalid, error).',
    labelNames: ['controller', 'result'] as const,
    registers: [this.registry],
  });
  readonly reconcileErrors = new Counter({
    name: 'chaperone_operator_reconcile_errors_total',
    help: 'Reconciles that failed and were retried with backoff.',
    labelNames: ['controller'] as const,
    registers: [this.registry],
  });
  readonly reconcileSeconds = new Histogram({
    name: 'chaperone_operator_reconcile_duration_seconds',
    help: 'Time spent in one reconcile.',
    labelNames: ['controller'] as const,
    buckets: [0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  readonly queueDepth = new Gauge({
    name: 'chaperone_operator_queue_depth',
    help: 'Keys waiting in the work queue.',
    labelNames: ['controller'] as const,
    registers: [this.registry],
  });
  readonly informerRestarts = new Counter({
    name: 'chaperone_operator_informer_restarts_total',
    help: 'Informers restarted (fresh list and watch) after an error.',
    labelNames: ['informer'] as const,
    registers: [this.registry],
  });
  readonly leader = new Gauge({
    name: 'chaperone_operator_leader',
    help: '1 while this instance holds the leader lease.',
    registers: [this.registry],
  });
  readonly certNotAfter = new Gauge({
    name: 'chaperone_operator_webhook_cert_not_after_seconds',
    help: 'Expiry (unix seconds) of the webhook serving certificate and CA.',
    labelNames: ['cert'] as const,
    registers: [this.registry],
  });
}

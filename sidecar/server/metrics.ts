// Prometheus metrics of one sidecar process (served on /metrics by the admin server). Label
// children are cached so the data path does a map lookup, not a label-set build, per update.
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

export interface GatewayMetrics {
  sessionStarted(target: string): void;
  sessionEnded(target: string): void;
  statement(target: string, action: string): void;
  bytes(target: string, direction: 'client' | 'server', n: number): void;
  maskedCells(target: string, n: number): void;
  upstreamConnectSeconds(target: string, seconds: number): void;
}

export interface SidecarMetrics extends GatewayMetrics {
  readonly registry: Registry;
  setSpoolBytes(bytes: number): void;
  setConfigGeneration(generation: number): void;
  configReload(result: 'applied' | 'rejected'): void;
}

export function createMetrics(): SidecarMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'chaperone_process_' });
  const active = new Gauge({
    name: 'chaperone_sessions_active',
    help: 'Open agent sessions.',
    labelNames: ['target'],
    registers: [registry],
  });
  const total = new Counter({
    name: 'chaperone_sessions_total',
    help: 'Agent sessions accepted.',
    labelNames: ['target'],
    registers: [registry],
  });
  const statements = new Counter({
    name: 'chaperone_statements_total',
    help: 'Statements seen, by policy action (allow, alert, block, requireApproval, approved, denied).',
    labelNames: ['target', 'action'],
    registers: [registry],
  });
  const bytes = new Counter({
    name: 'chaperone_bytes_total',
    help: 'Bytes relayed, by sender (client = agent, server = upstream).',
    labelNames: ['target', 'direction'],
    registers: [registry],
  });
  const masked = new Counter({
    name: 'chaperone_masked_cells_total',
    help: 'Result cells masked.',
    labelNames: ['target'],
    registers: [registry],
  });
  const spool = new Gauge({
    name: 'chaperone_recording_spool_bytes',
    help: 'Recording bytes spooled and not yet uploaded.',
    registers: [registry],
  });
  const connect = new Histogram({
    name: 'chaperone_upstream_connect_seconds',
    help: 'Time to connect and log in to the upstream.',
    labelNames: ['target'],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  });
  const generation = new Gauge({
    name: 'chaperone_config_generation',
    help: 'Policy generation of the loaded config.',
    registers: [registry],
  });
  const reloads = new Counter({
    name: 'chaperone_config_reloads_total',
    help: 'Config reloads by result.',
    labelNames: ['result'],
    registers: [registry],
  });

  const cache = new Map<string, { inc(n?: number): void }>();
  const child = (metric: Counter<string>, ...labels: string[]) => {
    const key = `${(metric as unknown as { name: string }).name}\0${labels.join('\0')}`;
    let c = cache.get(key);
    if (!c) {
      c = metric.labels(...labels);
      cache.set(key, c);
    }
    return c;
  };

  return {
    registry,
    sessionStarted: (t) => {
      active.labels(t).inc();
      child(total, t).inc();
    },
    sessionEnded: (t) => active.labels(t).dec(),
    statement: (t, a) => child(statements, t, a).inc(),
    bytes: (t, d, n) => child(bytes, t, d).inc(n),
    maskedCells: (t, n) => child(masked, t).inc(n),
    upstreamConnectSeconds: (t, s) => connect.labels(t).observe(s),
    setSpoolBytes: (b) => spool.set(b),
    setConfigGeneration: (g) => generation.set(g),
    configReload: (r) => reloads.labels(r).inc(),
  };
}

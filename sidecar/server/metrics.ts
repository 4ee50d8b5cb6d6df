// Prometheus metrics of one sidecar process (served on /metrics by the admin server). Label
// children are cached so the data path does a map lookup, not a label-set build, per update. The
// per-message counters (bytes, statements) only add to plain numbers on the data path; they are
// folded into prom-client when metrics are collected (scrape), which is where their cost belongs.
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

/** Metrics of one target, label children bound once (the data path does no label lookups). */
export interface TargetMetrics {
  sessionStarted(): void;
  sessionEnded(): void;
  statement(action: string): void;
  bytes(direction: 'client' | 'server', n: number): void;
  maskedCells(n: number): void;
  upstreamConnectSeconds(seconds: number): void;
}

export interface GatewayMetrics {
  forTarget(target: string): TargetMetrics;
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
    help: 'Open client connections (sessions, cancel requests and connections still authenticating).',
    labelNames: ['target'],
    registers: [registry],
  });
  const total = new Counter({
    name: 'chaperone_sessions_total',
    help: 'Client connections accepted on the listen port, whether or not the agent then authenticated.',
    labelNames: ['target'],
    registers: [registry],
  });
  const pending: (() => void)[] = [];
  const foldPending = () => {
    for (const fold of pending) fold();
  };
  const statements = new Counter({
    name: 'chaperone_statements_total',
    help: 'Statements seen, by policy action (allow, alert, block, requireApproval, approved, denied).',
    labelNames: ['target', 'action'],
    registers: [registry],
    collect: foldPending,
  });
  const bytes = new Counter({
    name: 'chaperone_bytes_total',
    help: 'Bytes relayed, by sender (client = agent, server = upstream).',
    labelNames: ['target', 'direction'],
    registers: [registry],
    collect: foldPending,
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

  const targets = new Map<string, TargetMetrics>();
  const forTarget = (t: string): TargetMetrics => {
    let m = targets.get(t);
    if (m) return m;
    const activeT = active.labels(t);
    const totalT = total.labels(t);
    const clientBytes = bytes.labels(t, 'client');
    const serverBytes = bytes.labels(t, 'server');
    const maskedT = masked.labels(t);
    const connectT = connect.labels(t);
    const byAction = new Map<string, { counter: { inc(n: number): void }; n: number }>();
    let clientPending = 0;
    let serverPending = 0;
    pending.push(() => {
      if (clientPending > 0) clientBytes.inc(clientPending);
      if (serverPending > 0) serverBytes.inc(serverPending);
      clientPending = 0;
      serverPending = 0;
      for (const a of byAction.values()) {
        if (a.n > 0) a.counter.inc(a.n);
        a.n = 0;
      }
    });
    m = {
      sessionStarted: () => {
        activeT.inc();
        totalT.inc();
      },
      sessionEnded: () => activeT.dec(),
      statement: (action) => {
        let a = byAction.get(action);
        if (!a) {
          a = { counter: statements.labels(t, action), n: 0 };
          byAction.set(action, a);
        }
        a.n++;
      },
      bytes: (direction, n) => {
        if (direction === 'client') clientPending += n;
        else serverPending += n;
      },
      maskedCells: (n) => maskedT.inc(n),
      upstreamConnectSeconds: (s) => connectT.observe(s),
    };
    targets.set(t, m);
    return m;
  };

  return {
    registry,
    forTarget,
    setSpoolBytes: (b) => spool.set(b),
    setConfigGeneration: (g) => generation.set(g),
    configReload: (r) => reloads.labels(r).inc(),
  };
}

// A realistic session header for tests and benchmarks. Its own module so a measured process can
// use it without loading the test runner or the AWS SDK (see bench/recording-rss.ts).
import type { SessionHeaderInput } from '../events.ts';

export function sampleHeader(overrides: Partial<SessionHeaderInput> = {}): SessionHeaderInput {
  return {
    protocol: 'postgres',
    target: { name: 'orders-db', host: '10.0.0.7', port: 5432 },
    identity: {
      subject: 'system:serviceaccount:agents:report-bot',
      issuer: 'https://kubernetes.default.svc',
      claims: { aud: ['chaperone'] },
      serviceAccount: 'report-bot',
      pod: 'report-bot-7f9c',
      namespace: 'agents',
      node: 'node-1',
      podUid: '6c1e0c1e-0000-4000-8000-000000000001',
      source: '127.0.0.1:51234',
    },
    policy: { name: 'db-agents', namespace: 'agents', generation: 3 },
    sidecarVersion: '0.1.0-test',
    labels: { dbUser: 'reporter' },
    ...overrides,
  };
}

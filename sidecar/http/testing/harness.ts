// Test support for the HTTP gateway: the shared sidecar harness (sidecar/testing/harness.ts) with one
// http (or kubernetes) target in front of a real HTTPS server (upstream-server.ts).
import type { SidecarConfigInput } from '../../config/index.ts';
import {
  openWorkspace,
  type SidecarHarness,
  type SidecarHarnessOptions,
  startSidecarHarness,
  testLogger,
} from '../../testing/harness.ts';

export { AGENT_SUBJECT } from '../../testing/harness.ts';
export const UPSTREAM_TOKEN = 'upstream-secret-token';

export interface HttpHarness extends SidecarHarness {
  /** http://127.0.0.1:<port> */
  base: string;
}

export interface HttpHarnessOptions {
  target: Omit<SidecarConfigInput['targets'][number], 'name' | 'listenPort' | 'credentialsDir'> & {
    name?: string;
  };
  /** Files of the credentials Secret. */
  credentials?: Record<string, string>;
  config?: Partial<SidecarConfigInput>;
  /** Issuers instead of the local one (the Kubernetes tests use the apiserver's). */
  issuers?: SidecarHarnessOptions['issuers'];
  pod?: { serviceAccount?: string; namespace?: string; pod?: string };
  /** recording.durability (default: strict, as failClosed implies). */
  durability?: 'strict' | 'batched';
  /** recording.segment.maxSeconds (default 1: tests read sessions back soon). */
  segmentSeconds?: number;
}

export async function startHttpHarness(options: HttpHarnessOptions): Promise<HttpHarness> {
  const ws = await openWorkspace('http', options.credentials ?? { token: UPSTREAM_TOKEN });
  const h = await startSidecarHarness(ws, {
    target: { name: 'api', ...options.target },
    policy: { name: 'http-policy', generation: 1 },
    shutdownGraceSeconds: 2,
    ...(options.issuers ? { issuers: options.issuers } : {}),
    recording: {
      segment: { maxSeconds: options.segmentSeconds ?? 1 },
      ...(options.durability ? { durability: options.durability } : {}),
    },
    ...(options.config ? { config: options.config } : {}),
    logger: testLogger('silent'),
    ...(options.pod ? { pod: options.pod } : {}),
  });
  return { ...h, base: `http://127.0.0.1:${h.port}` };
}

// Turns a validated config into the live objects sessions use (identity verifier, SQL guard, masker,
// approvals, alerts). Built whole before it replaces the previous set, so a reload is atomic.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { SidecarConfig, SidecarTarget } from '../config/index.ts';
import { DEFAULT_LIMITS, type PostgresLimits, type PostgresRuntime } from '../postgres/context.ts';
import {
  type AlertSink,
  type ApprovalBackend,
  createAlertSink,
  createApprovalBackend,
  createIdentityVerifier,
  createKubernetesApprovalBackend,
  createMasker,
  createSqlGuard,
  type IdentityVerifier,
  loadKubeConfig,
  openRecorder,
  type PodIdentity,
  type Recorder,
  withApprovalReview,
} from './modules.ts';

export interface SharedRuntime {
  verifier: IdentityVerifier;
  alerts: AlertSink;
  approvals: ApprovalBackend;
}

/** Limits not (yet) in the config schema, tunable through the environment. */
export function limitsFromEnv(env: NodeJS.ProcessEnv): PostgresLimits {
  const num = (name: string, fallback: number) => {
    const v = env[name];
    if (v === undefined || v === '') return fallback;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) throw new Error(`${name} must be a non-negative integer, got "${v}"`);
    return n;
  };
  return {
    maxMessageBytes: num('CHAPERONE_PG_MAX_MESSAGE_BYTES', DEFAULT_LIMITS.maxMessageBytes),
    sampleRows: num('CHAPERONE_PG_SAMPLE_ROWS', DEFAULT_LIMITS.sampleRows),
    sampleBytes: num('CHAPERONE_PG_SAMPLE_BYTES', DEFAULT_LIMITS.sampleBytes),
    startupTimeoutMs: num('CHAPERONE_PG_STARTUP_TIMEOUT_MS', DEFAULT_LIMITS.startupTimeoutMs),
    upstreamLoginTimeoutMs: num('CHAPERONE_PG_LOGIN_TIMEOUT_MS', DEFAULT_LIMITS.upstreamLoginTimeoutMs),
    maxPendingAppends: num('CHAPERONE_PG_MAX_PENDING_APPENDS', DEFAULT_LIMITS.maxPendingAppends),
  };
}

/** The in-cluster service-account token the webhook mounts at the standard path. */
const IN_CLUSTER_TOKEN_FILE = '/var/run/secrets/kubernetes.io/serviceaccount/token';

export function buildShared(
  config: SidecarConfig,
  pod: PodIdentity,
  logger: Logger,
  env: NodeJS.ProcessEnv = process.env,
): SharedRuntime {
  // Approvals first: the only part that can refuse the config, before anything needs closing. The
  // alert sink comes after; the approvals backend reaches it only once a request is waiting.
  let alerts: AlertSink | undefined;
  const approvals = createApprovalBackend(config.approvals, {
    kubernetes: () => {
      if (!pod.namespace) {
        throw new Error(
          'approvals.backend kubernetes needs the pod namespace (CHAPERONE_POD_NAMESPACE) for its SessionApprovals',
        );
      }
      let kubeConfig: ReturnType<typeof loadKubeConfig>;
      try {
        kubeConfig = loadKubeConfig(env);
      } catch (err) {
        throw new Error(`approvals.backend kubernetes: ${(err as Error).message}`);
      }
      const log = logger.child({ component: 'approvals' });
      return createKubernetesApprovalBackend({
        namespace: pod.namespace,
        kubeConfig,
        reviewers: config.approvals.reviewers,
        onWarning: (message) => log.warn(message),
        onUnauthorisedDecision: (seen) =>
          alerts?.send({
            kind: 'approval',
            sessionId: seen.request.sessionId,
            subject: seen.request.subject,
            target: seen.request.target,
            rule: seen.request.rule,
            statement: seen.request.statement,
            message: `unauthorised ${seen.approved ? 'approval' : 'denial'} on SessionApproval ${seen.name} not obeyed: ${seen.why}`,
          }),
      });
    },
  });
  const verifier = createIdentityVerifier(config.identity, {
    pod,
    logger: logger.child({ component: 'identity' }),
    kubernetesTokenFile: IN_CLUSTER_TOKEN_FILE,
    // TokenReview and the offboarding ConfigMap: the pod's own credentials (or KUBECONFIG).
    kubeConfig: () => loadKubeConfig(env),
  });
  alerts = createAlertSink(config.alerts, logger.child({ component: 'alerts' }));
  // Statements awaiting a SessionApproval: the alert names the kubectl commands that decide it.
  const kubernetesReview = config.approvals.backend === 'kubernetes' ? pod.namespace : undefined;
  return { verifier, alerts: withApprovalReview(alerts, kubernetesReview), approvals };
}

export async function buildPostgresRuntime(
  config: SidecarConfig,
  target: SidecarTarget,
  shared: SharedRuntime,
  limits: PostgresLimits,
): Promise<PostgresRuntime> {
  const masking = config.masking;
  return {
    target,
    policy: config.policy,
    verifier: shared.verifier,
    guard: await createSqlGuard(config.guardrails, target.name),
    masker: createMasker(masking),
    maskingConfigured: masking.columns.length > 0 || masking.detectors.length > 0,
    keepOriginals: masking.keepOriginals,
    strictRecording: recordingDurability(config.recording) === 'strict',
    approvals: shared.approvals,
    approvalTimeoutMs: config.approvals.timeoutSeconds * 1000,
    alerts: shared.alerts,
    limits,
  };
}

/**
 * The gateways never wait for an append to be durable (only for backpressure), so a 2 ms group
 * commit window costs them no latency and lets a statement and its result share one disk write:
 * at one client it cut the sidecar's CPU per statement from 285 to 201 us (docs/benchmarks.md).
 */
export const SIDECAR_COMMIT_WINDOW_MS = 2;

/** recording.durability, defaulted from failMode: strict for failClosed, batched for failOpen. */
export function recordingDurability(r: {
  durability?: 'strict' | 'batched' | undefined;
  failMode: 'failClosed' | 'failOpen';
}): 'strict' | 'batched' {
  return r.durability ?? (r.failMode === 'failClosed' ? 'strict' : 'batched');
}

async function readTrimmed(path: string): Promise<string> {
  return (await readFile(path, 'utf8')).trim();
}

/**
 * Opens the process's one recorder from the recording section. `maxUnsettledAppends` is the bound
 * the sessions enforce on unacknowledged appends (what a crash can lose; declared in crash gaps).
 */
export async function openConfiguredRecorder(
  config: SidecarConfig,
  logger: Logger,
  maxUnsettledAppends?: number,
): Promise<Recorder> {
  const r = config.recording;
  const signingKey = await readFile(r.signingKeyFile, 'utf8').catch((err: Error) => {
    throw new Error(`cannot read the recording signing key ${r.signingKeyFile}: ${err.message}`);
  });
  const credentials = r.store.credentialsDir
    ? {
        accessKeyId: await readTrimmed(join(r.store.credentialsDir, 'accessKeyId')),
        secretAccessKey: await readTrimmed(join(r.store.credentialsDir, 'secretAccessKey')),
      }
    : undefined;
  return openRecorder({
    spoolDir: r.spoolDir,
    store: r.store.url,
    s3: {
      endpoint: r.store.endpoint,
      region: r.store.region,
      forcePathStyle: r.store.forcePathStyle,
      credentials,
    },
    signingKey,
    keyId: r.keyId,
    seal: { maxBytes: r.segment.maxBytes, maxMs: r.segment.maxSeconds * 1000 },
    spoolLimitBytes: r.spoolLimitBytes,
    failMode: r.failMode,
    retention: r.objectLock ? { mode: r.objectLock.mode, days: r.retentionDays } : undefined,
    logger: logger.child({ component: 'recording' }),
    ...(maxUnsettledAppends ? { maxUnsettledAppends } : {}),
    // strict: the statements the gateway waits on are appended urgent, so their group goes at once;
    // the window only gathers what nobody waits on (results), which then rides along in that write.
    commitWindowMs: SIDECAR_COMMIT_WINDOW_MS,
  });
}

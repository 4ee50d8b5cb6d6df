// The sidecar's Kubernetes approval backend: each approval is a SessionApproval object in the pod's
// namespace, decided by a reviewer through the status subresource
// (kubectl patch sessionapproval X --subresource=status --type=merge -p '{"status":{"decision":{"approved":true}}}').
// The backend watches the object until status.decision is set, the timeout passes (denied,
// timedOut; status.phase Expired is written when RBAC permits) or the session ends (cancelled).
// Like every approval backend it never rejects: a failure is a denial naming the failure.
// A decision by someone who may not decide (not one of the policy's reviewers, or the agent itself)
// is not obeyed: the request keeps waiting, the sighting is reported (onUnauthorisedDecision) and,
// when the wait ends in a timeout, the denial's reason names it so the recording keeps it.

import { delimiter } from 'node:path';
import {
  CustomObjectsApi,
  KubeConfig,
  PatchStrategy,
  setHeaderOptions,
  Watch,
} from '@kubernetes/client-node';
import {
  approvalDecisionSchema,
  type ApprovalDecision as Recorded,
  SESSION_APPROVAL,
  type SessionApprovalSpec,
} from '../../crds/index.ts';
import type { ApprovalBackend, ApprovalDecision, ApprovalRequest, IgnoredDecision } from '../policy/index.ts';
import { type Reviewers, unauthorisedBecause } from './reviewers.ts';

export { type RecordedDecision, type Reviewers, unauthorisedBecause } from './reviewers.ts';
export type { ApprovalBackend, ApprovalDecision, ApprovalRequest };

/**
 * The credentials the backend talks to the apiserver with: the file KUBECONFIG names when set (tests,
 * `make demo`, a sidecar run outside a cluster), else the pod's in-cluster service account.
 */
export function loadKubeConfig(env: NodeJS.ProcessEnv = process.env): KubeConfig {
  const kc = new KubeConfig();
  const files = (env.KUBECONFIG ?? '').split(delimiter).filter((f) => f !== '');
  if (files.length > 1) {
    throw new Error(`KUBECONFIG names ${files.length} files; the sidecar reads exactly one`);
  }
  if (files.length === 1) {
    try {
      kc.loadFromFile(files[0]!);
    } catch (error) {
      throw new Error(`cannot load KUBECONFIG ${files[0]}: ${messageOf(error)}`);
    }
    if (!kc.getCurrentCluster()) throw new Error(`KUBECONFIG ${files[0]} has no current cluster`);
    return kc;
  }
  // loadFromCluster does not fail outside a cluster; it would point at https://undefined:undefined.
  // (It reads process.env itself; `env` is process.env everywhere but in tests.)
  if (!env.KUBERNETES_SERVICE_HOST || !env.KUBERNETES_SERVICE_PORT) {
    throw new Error('not running in a cluster (KUBERNETES_SERVICE_HOST/PORT unset) and KUBECONFIG not set');
  }
  kc.loadFromCluster();
  return kc;
}

export interface KubernetesApprovalBackendOptions {
  /** Namespace of the pod (CHAPERONE_POD_NAMESPACE); approvals are created there. */
  namespace: string;
  /** Default: loadKubeConfig() (KUBECONFIG when set, else the pod's in-cluster credentials). */
  kubeConfig?: KubeConfig;
  /** Called for conditions worth a log line (watch restarts, status writes refused). */
  onWarning?: (message: string) => void;
  /**
   * SessionPolicy spec.approvals.reviewers: only their decisions are obeyed. Absent or empty: anyone
   * RBAC lets write the status (except the agent itself).
   */
  reviewers?: Reviewers | undefined;
  /** Called once per SessionApproval whose decision is not obeyed (for a log line and an alert). */
  onUnauthorisedDecision?: (seen: UnauthorisedDecision) => void;
}

/** A decision written by someone who may not decide; the request went on waiting. */
export interface UnauthorisedDecision {
  request: ApprovalRequest;
  /** The SessionApproval object. */
  name: string;
  approved: boolean;
  approver?: string;
  approverGroups?: string[];
  reason?: string;
  /** Why it is not obeyed. */
  why: string;
}

const { group, version, plural } = SESSION_APPROVAL;
const MAX_STATEMENT = 65536;

/** `<sessionId>-<n>` made a valid object name (DNS-1123 subdomain). */
export function approvalName(sessionId: string, n: number): string {
  const suffix = `-${n}`;
  const base = sessionId
    .toLowerCase()
    .replace(/[^a-z0-9.-]+/g, '-')
    .replace(/^[^a-z0-9]+/, '')
    .slice(0, 253 - suffix.length)
    .replace(/[^a-z0-9]+$/, '');
  return `${base || 'approval'}${suffix}`;
}

/** The session id as a label value (at most 63 characters, alphanumeric at both ends). */
export function sessionLabel(sessionId: string): string {
  return sessionId
    .replace(/[^A-Za-z0-9._-]+/g, '-')
    .slice(0, 63)
    .replace(/^[^A-Za-z0-9]+|[^A-Za-z0-9]+$/g, '');
}

interface ApprovalObject {
  metadata?: { name?: string; resourceVersion?: string };
  status?: { decision?: unknown; phase?: string };
}

function recordedDecision(object: ApprovalObject | undefined): Recorded | undefined {
  const parsed = approvalDecisionSchema.safeParse(object?.status?.decision);
  return parsed.success ? parsed.data : undefined;
}

function decisionOf(recorded: Recorded): ApprovalDecision {
  return {
    approved: recorded.approved,
    ...(recorded.approver !== undefined ? { approver: recorded.approver } : {}),
    ...(recorded.reason !== undefined ? { reason: recorded.reason } : {}),
  };
}

/** What the recording keeps of a decision that was not obeyed. */
function ignoredDecision(seen: UnauthorisedDecision): IgnoredDecision {
  const { request: _request, name: _name, ...decision } = seen;
  return decision;
}

function statusOf(error: unknown): number | undefined {
  const e = error as { code?: unknown; statusCode?: unknown };
  if (typeof e?.code === 'number') return e.code;
  if (typeof e?.statusCode === 'number') return e.statusCode;
  return undefined;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export function createKubernetesApprovalBackend(options: KubernetesApprovalBackendOptions): ApprovalBackend {
  const kubeConfig = options.kubeConfig ?? loadKubeConfig();
  const api = kubeConfig.makeApiClient(CustomObjectsApi);
  const { namespace } = options;
  const warn = options.onWarning ?? (() => undefined);
  const reportUnauthorised = options.onUnauthorisedDecision ?? (() => undefined);
  const counters = new Map<string, number>();

  const read = async (name: string): Promise<ApprovalObject> =>
    (await api.getNamespacedCustomObject({ group, version, namespace, plural, name })) as ApprovalObject;

  async function create(req: ApprovalRequest, expiresAt: Date): Promise<ApprovalObject> {
    const spec: SessionApprovalSpec = {
      sessionId: req.sessionId,
      policy: req.policy,
      rule: req.rule,
      target: req.target,
      protocol: req.protocol,
      subject: req.subject,
      ...(req.pod !== undefined ? { pod: req.pod } : {}),
      ...(req.serviceAccount !== undefined ? { serviceAccount: req.serviceAccount } : {}),
      statement: req.statement.length > MAX_STATEMENT ? req.statement.slice(0, MAX_STATEMENT) : req.statement,
      expiresAt: expiresAt.toISOString(),
    };
    // A name can be taken by an earlier sidecar run of the same session: move on to the next number.
    for (let attempt = 0; ; attempt++) {
      const n = (counters.get(req.sessionId) ?? 0) + 1;
      counters.set(req.sessionId, n);
      const name = approvalName(req.sessionId, n);
      try {
        return (await api.createNamespacedCustomObject({
          group,
          version,
          namespace,
          plural,
          body: {
            apiVersion: `${group}/${version}`,
            kind: SESSION_APPROVAL.kind,
            metadata: { name, labels: { 'chaperone.dev/session': sessionLabel(req.sessionId) } },
            spec,
          },
        })) as ApprovalObject;
      } catch (error) {
        if (statusOf(error) !== 409 || attempt >= 20) throw error;
      }
    }
  }

  /** Best effort: reviewers see the request expired. Agent RBAC usually forbids it; then it stays Pending. */
  async function markExpired(
    name: string,
    resourceVersion: string | undefined,
  ): Promise<Recorded | undefined> {
    try {
      await api.patchNamespacedCustomObjectStatus(
        {
          group,
          version,
          namespace,
          plural,
          name,
          body: { metadata: resourceVersion ? { resourceVersion } : {}, status: { phase: 'Expired' } },
        },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      );
      return undefined;
    } catch (error) {
      const status = statusOf(error);
      // 409: changed since we looked; a decision may just have arrived.
      if (status === 409) return recordedDecision(await read(name).catch(() => undefined));
      if (status !== 403) warn(`cannot mark SessionApproval ${name} expired: ${messageOf(error)}`);
      return undefined;
    }
  }

  return {
    async request(req, signal) {
      if (signal?.aborted)
        return { approved: false, cancelled: true, reason: 'session closed before a decision' };
      const expiresAt = new Date(Date.now() + Math.max(0, req.timeoutMs));
      let created: ApprovalObject;
      try {
        created = await create(req, expiresAt);
      } catch (error) {
        return { approved: false, reason: `approval request could not be created: ${messageOf(error)}` };
      }
      const name = created.metadata?.name ?? '';
      let latest: ApprovalObject = created;
      /** The decision written by someone who may not decide, once seen (it is final: one per object). */
      let ignored: UnauthorisedDecision | undefined;
      /** The decision to obey, or undefined (none yet, or one that is not obeyed). */
      const obeyed = (recorded: Recorded | undefined): ApprovalDecision | undefined => {
        if (!recorded) return undefined;
        const why = unauthorisedBecause(recorded, options.reviewers, {
          policy: req.policy,
          subject: req.subject,
          serviceAccount: req.serviceAccount,
          namespace,
        });
        if (why === undefined) return decisionOf(recorded);
        if (!ignored) {
          ignored = {
            request: req,
            name,
            approved: recorded.approved,
            ...(recorded.approver !== undefined ? { approver: recorded.approver } : {}),
            ...(recorded.approverGroups !== undefined ? { approverGroups: recorded.approverGroups } : {}),
            ...(recorded.reason !== undefined ? { reason: recorded.reason } : {}),
            why,
          };
          warn(
            `SessionApproval ${name}: ${recorded.approved ? 'approval' : 'denial'} not obeyed: ${why}; still waiting for a reviewer`,
          );
          reportUnauthorised(ignored);
        }
        return undefined;
      };

      return new Promise<ApprovalDecision>((resolve) => {
        let done = false;
        // Set when the timeout fires: no watch is (re)started while the last look runs.
        let closing = false;
        let watch: AbortController | undefined;
        let retryTimer: NodeJS.Timeout | undefined;
        let failures = 0;
        const finish = (decision: ApprovalDecision) => {
          if (done) return;
          done = true;
          clearTimeout(timer);
          clearTimeout(retryTimer);
          signal?.removeEventListener('abort', onAbort);
          watch?.abort();
          resolve(decision);
        };
        const onAbort = () =>
          finish({ approved: false, cancelled: true, reason: 'session closed before a decision' });
        const onEvent = (object: ApprovalObject) => {
          latest = object;
          const decision = obeyed(recordedDecision(object));
          if (decision) finish(decision);
        };
        const startWatch = async () => {
          if (done || closing) return;
          try {
            // A fresh read covers anything that happened while no watch was open.
            onEvent(await read(name));
            if (done || closing) return;
            watch = await new Watch(kubeConfig).watch(
              `/apis/${group}/${version}/namespaces/${namespace}/${plural}`,
              { fieldSelector: `metadata.name=${name}`, resourceVersion: latest.metadata?.resourceVersion },
              (type, object: ApprovalObject) => {
                if (type === 'ADDED' || type === 'MODIFIED') {
                  failures = 0;
                  onEvent(object);
                } else if (type === 'DELETED') {
                  finish({
                    approved: false,
                    reason: `SessionApproval ${name} was deleted before a decision`,
                  });
                }
              },
              (error: unknown) => {
                if (done || closing) return;
                // client-node ends a watch after 30 s without events (TimeoutError): a normal
                // end, re-watched at once; anything else backs off.
                const failed =
                  error !== null && error !== undefined && (error as Error).name !== 'TimeoutError';
                if (failed) failures += 1;
                const delay = Math.min(5000, 200 * 2 ** Math.min(failures, 5));
                if (failed)
                  warn(`watch of SessionApproval ${name} ended (${messageOf(error)}); again in ${delay} ms`);
                retryTimer = setTimeout(() => void startWatch(), failed ? delay : 0);
              },
            );
          } catch (error) {
            if (done || closing) return;
            if (statusOf(error) === 404) {
              finish({ approved: false, reason: `SessionApproval ${name} was deleted before a decision` });
              return;
            }
            failures += 1;
            retryTimer = setTimeout(
              () => void startWatch(),
              Math.min(5000, 200 * 2 ** Math.min(failures, 5)),
            );
          }
        };
        const timer = setTimeout(
          async () => {
            if (done) return;
            closing = true;
            clearTimeout(retryTimer);
            watch?.abort();
            // One last look: a decision that arrived just now wins over the timeout.
            const last = await read(name).catch(() => undefined);
            const decided =
              obeyed(recordedDecision(last)) ??
              obeyed(await markExpired(name, last?.metadata?.resourceVersion));
            const noDecision = `no decision within ${Math.round(req.timeoutMs / 1000)}s`;
            finish(
              decided ?? {
                approved: false,
                timedOut: true,
                // The recording keeps the ignored decision through this reason (approval.denied).
                reason: ignored
                  ? `${noDecision}; ignored the ${ignored.approved ? 'approval' : 'denial'} by ${ignored.approver ?? 'an unnamed approver'}: ${ignored.why}`
                  : noDecision,
                ...(ignored ? { ignored: [ignoredDecision(ignored)] } : {}),
              },
            );
          },
          Math.max(0, req.timeoutMs),
        );
        signal?.addEventListener('abort', onAbort, { once: true });
        // The session may have closed while the request was being created (no event fires again).
        if (signal?.aborted) {
          onAbort();
          return;
        }
        void startWatch();
      });
    },
  };
}

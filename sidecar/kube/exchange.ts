// What the Kubernetes target does on top of the HTTP gateway: acts upstream with the policy's token
// or impersonates the agent, refuses the agent's own impersonation headers (headers.ts), asks for
// JSON when Secret data must be masked, answers refusals as metav1.Status (kubectl prints them as
// "Error from server (Forbidden)"), and names the objects a response touched.
import type { IncomingHttpHeaders } from 'node:http';
import type { HttpRuntime } from '../http/context.ts';
import type { HttpSession } from '../http/session.ts';
import type { KubeRequestInfo } from './request-info.ts';

const REASONS: Record<number, string> = {
  400: 'BadRequest',
  401: 'Unauthorized',
  403: 'Forbidden',
  502: 'InternalError',
};

export function kubeStatus(code: number, message: string): Record<string, unknown> {
  return {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message,
    reason: REASONS[code] ?? 'InternalError',
    code,
  };
}

/** Secret values must be masked in this response (the policy does not allow them). */
export function mustMaskSecrets(rt: HttpRuntime, info: KubeRequestInfo): boolean {
  return !rt.kubernetes.allowSecretData && info.isResourceRequest && info.resource === 'secrets';
}

/** Media ranges of the agent's Accept that the sidecar can mask: JSON (plain or as=Table). */
export function jsonAccept(accept: string | undefined): string {
  const kept = (accept ?? '')
    .split(',')
    .map((r) => r.trim())
    .filter((r) => /^application\/json(\s*;|$)/i.test(r));
  return kept.length > 0 ? kept.join(', ') : 'application/json';
}

export function kubeRequestHeaders(
  rt: HttpRuntime,
  session: HttpSession,
  info: KubeRequestInfo,
  agent: IncomingHttpHeaders,
  secretsMasked: boolean,
): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  if (secretsMasked) out.accept = jsonAccept(typeof agent.accept === 'string' ? agent.accept : undefined);
  if (rt.kubernetes.upstreamAuth === 'impersonate') {
    // The user only: for a service account the apiserver adds its groups itself
    // (system:serviceaccounts, system:serviceaccounts:<ns>, system:authenticated), so the sidecar
    // needs impersonate on that one service account and nothing on groups.
    out['impersonate-user'] = session.subject ?? '';
  }
  void info;
  return out;
}

/** UIDs and resourceVersions of the object, list items or table rows in a response. */
export function objectRefs(doc: unknown): { uids?: string[]; resourceVersions?: string[] } | undefined {
  const uids: string[] = [];
  const rvs: string[] = [];
  const visit = (o: unknown) => {
    if (typeof o !== 'object' || o === null) return;
    const meta = (o as { metadata?: { uid?: unknown; resourceVersion?: unknown } }).metadata;
    if (meta && typeof meta.uid === 'string') uids.push(meta.uid);
    if (meta && typeof meta.resourceVersion === 'string') rvs.push(meta.resourceVersion);
  };
  visit(doc);
  const d = doc as { items?: unknown[]; rows?: { object?: unknown }[] };
  if (Array.isArray(d.items)) for (const i of d.items.slice(0, 1000)) visit(i);
  if (Array.isArray(d.rows)) for (const r of d.rows.slice(0, 1000)) visit(r.object);
  if (uids.length === 0 && rvs.length === 0) return undefined;
  return { ...(uids.length ? { uids } : {}), ...(rvs.length ? { resourceVersions: rvs } : {}) };
}

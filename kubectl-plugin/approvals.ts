// SessionApprovals as a reviewer sees them: list the pending ones (across the namespaces the user may
// list), decide one through the status subresource (the admission webhook stamps who decided), and
// the lines `watch` prints as requests arrive and are decided.
import { CustomObjectsApi, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { CliError } from '../cli/index.ts';
import { SESSION_APPROVAL, type SessionApprovalSpec } from '../crds/index.ts';
import { type Access, type Kube, kubeCall, statusCode } from './kube.ts';

const { group, version, plural } = SESSION_APPROVAL;

export interface Approval {
  metadata: { name: string; namespace: string; creationTimestamp?: string | Date; resourceVersion?: string };
  spec: SessionApprovalSpec;
  status?: {
    phase?: string;
    decision?: { approved: boolean; reason?: string; approver?: string; decidedAt?: string };
  };
}

export type ApprovalState = 'pending' | 'approved' | 'denied' | 'expired';

export function stateOf(a: Approval, now = Date.now()): ApprovalState {
  const d = a.status?.decision;
  if (d) return d.approved ? 'approved' : 'denied';
  if (a.status?.phase === 'Expired') return 'expired';
  const expires = Date.parse(a.spec.expiresAt);
  return Number.isFinite(expires) && expires <= now ? 'expired' : 'pending';
}

const listAccess = (namespace?: string): Access => ({
  verb: 'list',
  group,
  resource: plural,
  ...(namespace ? { namespace } : {}),
});

export interface Listed {
  items: Approval[];
  /** The namespace listed when not cluster-wide. */
  namespace?: string;
  resourceVersion?: string;
  /** Set when a cluster-wide list was refused and the context's namespace was listed instead. */
  note?: string;
}

/**
 * -n lists that namespace; otherwise every namespace when RBAC allows a cluster-wide list, else the
 * context's namespace (with a note saying so). -A insists on cluster-wide.
 */
export async function listApprovals(kube: Kube, allNamespaces: boolean): Promise<Listed> {
  const api = kube.kc.makeApiClient(CustomObjectsApi);
  type ListBody = { items: Approval[]; metadata?: { resourceVersion?: string } };
  const inNamespace = async (namespace: string, note?: string): Promise<Listed> => {
    const body = (await kubeCall(kube.kc, listAccess(namespace), () =>
      api.listNamespacedCustomObject({ group, version, plural, namespace }),
    )) as ListBody;
    return {
      items: body.items,
      namespace,
      ...(body.metadata?.resourceVersion ? { resourceVersion: body.metadata.resourceVersion } : {}),
      ...(note ? { note } : {}),
    };
  };
  if (kube.namespaceGiven && !allNamespaces) return inNamespace(kube.namespace);
  try {
    const body = (await api.listClusterCustomObject({ group, version, plural })) as ListBody;
    return {
      items: body.items,
      ...(body.metadata?.resourceVersion ? { resourceVersion: body.metadata.resourceVersion } : {}),
    };
  } catch (error) {
    if (statusCode(error) !== 403 || allNamespaces)
      return kubeCall(kube.kc, listAccess(), () => Promise.reject(error));
    return inNamespace(
      kube.namespace,
      `listing namespace ${kube.namespace} only: you may not list sessionapprovals in all namespaces`,
    );
  }
}

export function pendingOf(items: Approval[], now = Date.now()): Approval[] {
  return items
    .filter((a) => stateOf(a, now) === 'pending')
    .sort((a, b) => Date.parse(a.spec.expiresAt) - Date.parse(b.spec.expiresAt));
}

/** `42s`, `5m`, `3h`, `2d` (kubectl's AGE style, one unit). */
export function shortDuration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.floor(s / 60)}m`;
  if (s < 172800) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}

export const oneLine = (s: string) => s.replace(/\s+/g, ' ').trim();

function created(a: Approval): number {
  const t = a.metadata.creationTimestamp;
  return t instanceof Date ? t.getTime() : Date.parse(t ?? '');
}

/** One reviewer-facing record per approval (the table's rows and --json). */
export function describeApproval(a: Approval, now = Date.now()) {
  const createdMs = created(a);
  return {
    namespace: a.metadata.namespace,
    name: a.metadata.name,
    state: stateOf(a, now),
    subject: a.spec.subject,
    sessionId: a.spec.sessionId,
    pod: a.spec.pod ?? '',
    target: a.spec.target,
    protocol: a.spec.protocol,
    policy: a.spec.policy,
    rule: a.spec.rule,
    statement: a.spec.statement,
    createdAt: Number.isFinite(createdMs) ? new Date(createdMs).toISOString() : undefined,
    ageSeconds: Number.isFinite(createdMs) ? Math.max(0, Math.floor((now - createdMs) / 1000)) : undefined,
    expiresAt: a.spec.expiresAt,
    secondsLeft: Math.max(0, Math.floor((Date.parse(a.spec.expiresAt) - now) / 1000)),
    approve: approveCommand('approve', a),
    deny: approveCommand('deny', a),
  };
}

export function approveCommand(verb: 'approve' | 'deny', a: Approval): string {
  return `kubectl chaperone ${verb} ${a.metadata.name} -n ${a.metadata.namespace}`;
}

const ellipsis = (s: string, width: number) =>
  s.length <= width ? s : width <= 1 ? s.slice(0, width) : `${s.slice(0, width - 1)}…`;

/**
 * A table that fits `width` columns: fixed columns keep their size, the flexible ones (statement
 * first, then subject, session, name) are cut with an ellipsis, never below their minimum.
 */
export function fitTable(
  header: string[],
  rows: string[][],
  width: number | undefined,
  flexible: { column: number; min: number }[],
): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  if (width !== undefined) {
    const total = () => widths.reduce((a, b) => a + b, 0) + 2 * (widths.length - 1);
    for (const { column, min } of flexible) {
      const over = total() - width;
      if (over <= 0) break;
      const floor = Math.min(widths[column]!, Math.max(min, header[column]!.length));
      widths[column] = Math.max(floor, widths[column]! - over);
    }
  }
  return [header, ...rows]
    .map((r) =>
      r
        .map((c, i) => {
          const cell = ellipsis(c, widths[i]!);
          return i === r.length - 1 ? cell : cell.padEnd(widths[i]!);
        })
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

export function approvalsTable(items: Approval[], width: number | undefined, now = Date.now()): string {
  const header = [
    'NAMESPACE',
    'NAME',
    'SUBJECT',
    'SESSION',
    'POD',
    'TARGET',
    'RULE',
    'AGE',
    'LEFT',
    'STATEMENT',
  ];
  const rows = items.map((a) => {
    const d = describeApproval(a, now);
    return [
      d.namespace,
      d.name,
      d.subject,
      d.sessionId,
      d.pod || '-',
      d.target,
      d.rule,
      d.ageSeconds === undefined ? '-' : shortDuration(d.ageSeconds * 1000),
      shortDuration(d.secondsLeft * 1000),
      oneLine(d.statement),
    ];
  });
  return fitTable(header, rows, width, [
    { column: 9, min: 16 },
    { column: 3, min: 8 },
    { column: 2, min: 14 },
    { column: 1, min: 12 },
    { column: 4, min: 8 },
  ]);
}

/** Finds which namespace holds `name` when -n was not given (unique match across namespaces). */
async function locate(kube: Kube, name: string): Promise<string> {
  if (kube.namespaceGiven) return kube.namespace;
  const api = kube.kc.makeApiClient(CustomObjectsApi);
  try {
    const body = (await api.listClusterCustomObject({
      group,
      version,
      plural,
      fieldSelector: `metadata.name=${name}`,
    })) as { items: Approval[] };
    const namespaces = body.items.map((a) => a.metadata.namespace);
    if (namespaces.length === 1) return namespaces[0]!;
    if (namespaces.length > 1)
      throw new CliError(`SessionApproval ${name} exists in ${namespaces.join(', ')}: pass -n <namespace>`);
  } catch (error) {
    if (error instanceof CliError) throw error;
    // Not allowed to look cluster-wide: the context's namespace it is.
  }
  return kube.namespace;
}

/**
 * The one pending request of a session (what an alert names before the object's name is known).
 * Several pending (a protocol that runs statements concurrently) means the reviewer must pick by name.
 */
export async function pendingOfSession(kube: Kube, sessionId: string): Promise<Approval> {
  const listed = await listApprovals(kube, false);
  const found = pendingOf(listed.items).filter((a) => a.spec.sessionId === sessionId);
  const where = listed.namespace ? ` in namespace ${listed.namespace}` : '';
  if (found.length === 0) throw new CliError(`no pending SessionApproval of session ${sessionId}${where}`);
  if (found.length > 1)
    throw new CliError(
      `session ${sessionId} has ${found.length} pending requests (${found.map((a) => a.metadata.name).join(', ')}): name one`,
    );
  return found[0]!;
}

export interface Decided {
  approval: Approval;
  verb: 'approve' | 'deny';
}

/**
 * Writes the decision through the status subresource. The client never names the approver: the
 * admission webhook stamps the authenticated user (and refuses reviewers the policy does not name).
 */
export async function decide(
  kube: Kube,
  name: string,
  approved: boolean,
  reason: string | undefined,
): Promise<Decided> {
  const api = kube.kc.makeApiClient(CustomObjectsApi);
  const namespace = await locate(kube, name);
  const current = (await kubeCall(kube.kc, { verb: 'get', group, resource: plural, namespace, name }, () =>
    api.getNamespacedCustomObject({ group, version, plural, namespace, name }),
  )) as Approval;
  const state = stateOf(current);
  if (state === 'approved' || state === 'denied') {
    const d = current.status!.decision!;
    throw new CliError(
      `SessionApproval ${namespace}/${name} was already ${state} by ${d.approver ?? 'unknown'}${d.decidedAt ? ` at ${d.decidedAt}` : ''}; a decision is final`,
    );
  }
  if (state === 'expired')
    throw new CliError(
      `SessionApproval ${namespace}/${name} expired at ${current.spec.expiresAt}; the session has already been refused`,
    );
  const decision = { approved, ...(reason ? { reason } : {}) };
  const updated = (await kubeCall(
    kube.kc,
    { verb: 'patch', group, resource: plural, subresource: 'status', namespace, name },
    () =>
      api.patchNamespacedCustomObjectStatus(
        {
          group,
          version,
          plural,
          namespace,
          name,
          // The resourceVersion makes the write conditional: a decision that landed since we looked wins.
          body: {
            metadata: { resourceVersion: current.metadata.resourceVersion },
            status: { decision },
          },
        },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      ),
  )) as Approval;
  return { approval: updated, verb: approved ? 'approve' : 'deny' };
}

export function decidedLine({ approval, verb }: Decided): string {
  const d = approval.status?.decision;
  const who = d?.approver ? ` as ${d.approver}` : '';
  return `${verb === 'approve' ? 'approved' : 'denied'} ${approval.metadata.namespace}/${approval.metadata.name}${who}: ${approval.spec.subject} on ${approval.spec.target}: ${oneLine(approval.spec.statement)}`;
}

/** A line for `watch`: one request, readable in a terminal and by a notifier (one line, key facts first). */
export function watchLine(a: Approval, now = Date.now()): string {
  const d = describeApproval(a, now);
  const at = new Date(now).toISOString().replace(/\.\d+Z$/, 'Z');
  const where = `${d.namespace}/${d.name}`;
  if (d.state === 'pending') {
    return `${at} PENDING ${where}: ${d.subject} asks to run "${oneLine(d.statement)}" on ${d.target} (rule ${d.rule}, session ${d.sessionId}${d.pod ? `, pod ${d.pod}` : ''}, ${shortDuration(d.secondsLeft * 1000)} left) | ${d.approve} | ${d.deny}`;
  }
  const decision = a.status?.decision;
  const by = decision?.approver ? ` by ${decision.approver}` : '';
  const why = decision?.reason ? `: ${decision.reason}` : '';
  return `${at} ${d.state.toUpperCase()} ${where}${by}${why}`;
}

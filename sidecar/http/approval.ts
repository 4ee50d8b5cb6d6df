// requireApproval for HTTP and Kubernetes requests: records the request for a reviewer, waits for
// the approval backend (the agent's request is held, its connection open), records the decision.
import type { IncomingMessage } from 'node:http';
import type { HttpRuntime } from './context.ts';
import type { HttpDecision } from './guard.ts';
import type { HttpSession } from './session.ts';

export async function awaitApproval(
  session: HttpSession,
  rt: HttpRuntime,
  decision: HttpDecision,
  summary: string,
  req: IncomingMessage,
): Promise<{ ok: true } | { ok: false; message: string }> {
  const rec = session.rec!;
  const rule = decision.rule ?? 'policy';
  const approval = `${rec.sessionId ?? 'session'}-approval-${++session.approvals}`;
  rec.add('approval.requested', 'internal', {
    approval,
    rule,
    command: summary,
    timeoutMs: rt.approvalTimeoutMs,
  });
  rt.alerts.send({
    kind: 'approval',
    sessionId: rec.sessionId,
    subject: session.identity?.subject,
    target: rt.target.name,
    rule,
    statement: summary,
    message: `request awaits approval under rule ${rule}`,
  });
  const abort = new AbortController();
  const onClose = () => abort.abort();
  req.socket.once('close', onClose);
  const pod = session.services.pod;
  const result = await rt.approvals
    .request(
      {
        sessionId: rec.sessionId ?? '',
        policy: rt.policy.name,
        rule,
        target: rt.target.name,
        protocol: rt.kube ? 'kubernetes' : 'http',
        subject: session.identity?.subject ?? '',
        ...(pod.pod ? { pod: pod.pod } : {}),
        ...(pod.serviceAccount ? { serviceAccount: pod.serviceAccount } : {}),
        statement: summary,
        timeoutMs: rt.approvalTimeoutMs,
      },
      abort.signal,
    )
    .catch((err: Error) => ({ approved: false, reason: `approval backend failed: ${err.message}` }) as const);
  req.socket.off('close', onClose);
  const r = result as {
    approved: boolean;
    approver?: string;
    reason?: string;
    timedOut?: boolean;
    ignored?: unknown[];
  };
  const payload = {
    approval,
    rule,
    approver: r.approver ?? (r.timedOut ? 'chaperone:timeout' : 'chaperone:no-reviewer'),
    ...(r.reason !== undefined ? { reason: r.reason } : {}),
    timedOut: r.timedOut ?? false,
    ...(r.ignored ? { ignoredDecisions: r.ignored } : {}),
    command: summary,
  };
  if (r.approved) {
    rec.add('approval.granted', 'internal', payload);
    return { ok: true };
  }
  rec.add('approval.denied', 'internal', payload);
  return {
    ok: false,
    message: `chaperone: request not approved under rule ${rule}${r.timedOut ? ' (timed out)' : r.reason ? `: ${r.reason}` : ''}`,
  };
}

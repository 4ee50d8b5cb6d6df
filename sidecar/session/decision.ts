// The command decision, the same for every protocol: a guardrail's verdict on one statement, command
// line or request becomes "forward" or "refuse with this message", with the alert, the approval wait
// and the policy events recorded. It never touches a socket: the gateway forwards or refuses.
import type { ApprovalDecision } from '../server/modules.ts';
import type { SessionCore } from './login.ts';

export type GuardAction = 'allow' | 'alert' | 'block' | 'requireApproval';

/** What a guardrail (SQL guard, command pattern, path pattern) said about one command. */
export interface GuardDecision {
  action: GuardAction;
  rule?: string | undefined;
  message?: string | undefined;
  classes?: readonly string[] | undefined;
}

export interface Command {
  /** The text the rule matched, recorded as `command` and sent with alerts and approvals. */
  text: string;
  /** How messages name it: "statement blocked by rule ...", "command awaits approval ...". */
  noun: string;
  /** Fields naming the command in every policy and approval event (e.g. { sql }). */
  named: Record<string, unknown>;
  /** More fields for policy.alert and policy.blocked (e.g. classes, protocol). */
  detail: Record<string, unknown>;
}

/** undefined: forward it; a string: refuse it with that message to the agent. */
export type Verdict = string | undefined;

/** Pending approvals of one session, so the agent (cancel) or the session end can abort them. */
export class CommandDecider {
  private readonly core: SessionCore;
  private approvals = 0;
  private abort: AbortController | undefined;

  constructor(core: SessionCore) {
    this.core = core;
  }

  /** Whether an approval is being waited for. */
  get awaitingApproval(): boolean {
    return this.abort !== undefined;
  }

  /** Aborts the approval being waited for (it is then denied); false when none was. */
  cancelApproval(): boolean {
    if (!this.abort) return false;
    this.abort.abort();
    return true;
  }

  /** Synchronous for allow, alert and block; a promise only while an approval is awaited. */
  decide(d: GuardDecision, cmd: Command): Verdict | Promise<Verdict> {
    const core = this.core;
    const rt = core.rt();
    const rec = core.rec!;
    core.metrics.statement(d.action);
    const rule = d.rule ?? 'policy';
    switch (d.action) {
      case 'allow':
        return undefined;
      case 'alert':
        rec.add('policy.alert', 'internal', { rule, ...cmd.detail, ...cmd.named });
        rt.alerts.send(this.alert('alert', d, cmd, `${cmd.noun} matched alert rule ${d.rule}`));
        return undefined;
      case 'block': {
        const message = `chaperone: ${cmd.noun} blocked by rule ${rule}: ${d.message ?? 'not allowed by policy'}`;
        rec.add(
          'policy.blocked',
          'internal',
          { rule, ...cmd.detail, ...cmd.named, reason: message, command: cmd.text },
          cmd.text || undefined,
        );
        rt.alerts.send(this.alert('blocked', d, cmd, message));
        core.logger.info({ rule: d.rule }, `${cmd.noun} blocked`);
        return message;
      }
      case 'requireApproval':
        return this.awaitApproval(d, cmd);
    }
  }

  /** Records a refusal by a built-in rule (no guardrail involved), counted as a block. */
  refuse(rule: string, message: string, cmd: Command): void {
    this.core.rec!.add(
      'policy.blocked',
      'internal',
      { rule, reason: message, command: cmd.text, ...cmd.named, ...cmd.detail },
      cmd.text || undefined,
    );
    this.core.logger.info({ rule }, 'message refused');
    this.core.metrics.statement('block');
  }

  alert(kind: 'alert' | 'blocked' | 'approval', d: GuardDecision, cmd: Command, message: string) {
    const core = this.core;
    return {
      kind,
      sessionId: core.rec?.sessionId,
      subject: core.subject,
      target: core.rt().target.name,
      rule: d.rule,
      statement: cmd.text,
      message,
      ...(core.attribution ? { attribution: core.attribution } : {}),
    };
  }

  /** Resolves undefined when approved, or the message to give the agent. */
  private async awaitApproval(d: GuardDecision, cmd: Command): Promise<Verdict> {
    const core = this.core;
    const rt = core.rt();
    const rule = d.rule ?? 'policy';
    const rec = core.rec!;
    const approval = `${rec.sessionId ?? 'session'}-approval-${++this.approvals}`;
    rec.add(
      'approval.requested',
      'internal',
      {
        approval,
        rule,
        command: cmd.text,
        ...cmd.named,
        ...(d.classes ? { classes: d.classes } : {}),
        timeoutMs: rt.approvalTimeoutMs,
      },
      cmd.text || undefined,
    );
    rt.alerts.send(this.alert('approval', d, cmd, `${cmd.noun} awaits approval under rule ${rule}`));
    core.logger.info({ rule }, `${cmd.noun} awaits approval`);
    const abort = new AbortController();
    this.abort = abort;
    let result: ApprovalDecision;
    try {
      result = await rt.approvals.request(
        {
          sessionId: rec.sessionId ?? '',
          policy: rt.policy.name,
          rule,
          target: rt.target.name,
          protocol: core.protocol,
          subject: core.subject ?? '',
          pod: core.services.pod.pod,
          serviceAccount: core.services.pod.serviceAccount,
          statement: cmd.text,
          timeoutMs: rt.approvalTimeoutMs,
        },
        abort.signal,
      );
    } catch (err) {
      result = {
        approved: false,
        reason: abort.signal.aborted ? 'canceled' : `approval backend failed: ${(err as Error).message}`,
      };
    } finally {
      this.abort = undefined;
    }
    if (abort.signal.aborted && !result.approved)
      result = { approved: false, reason: 'canceled by the agent' };
    const payload = {
      approval,
      rule,
      // Every decision names who made it; without a reviewer it was the sidecar (timeout, no backend).
      approver: result.approver ?? (result.timedOut ? 'chaperone:timeout' : 'chaperone:no-reviewer'),
      reason: result.reason,
      timedOut: result.timedOut ?? false,
      ...(result.ignored ? { ignoredDecisions: result.ignored } : {}),
      ...cmd.named,
    };
    if (result.approved) {
      rec.add('approval.granted', 'internal', payload);
      core.metrics.statement('approved');
      core.logger.info({ rule, approver: result.approver }, `${cmd.noun} approved`);
      return undefined;
    }
    rec.add('approval.denied', 'internal', payload);
    core.metrics.statement('denied');
    core.logger.info({ rule, reason: result.reason, timedOut: result.timedOut }, `${cmd.noun} not approved`);
    if (result.timedOut)
      return `chaperone: approval for rule ${rule} timed out after ${Math.round(rt.approvalTimeoutMs / 1000)} s`;
    return `chaperone: ${cmd.noun} denied under approval rule ${rule}${result.approver ? ` by ${result.approver}` : ''}${result.reason ? `: ${result.reason}` : ''}`;
  }
}

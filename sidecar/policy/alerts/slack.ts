// Slack-compatible incoming-webhook payloads ({text, blocks}); Mattermost, Rocket.Chat and Teams'
// Slack-compatible endpoints read `text` and ignore what they do not know.
import type { Alert, AlertKind, ApprovalReview } from './types.ts';

const TITLES: Record<AlertKind, string> = {
  blocked: ':no_entry: Chaperone blocked a statement',
  approval: ':raised_hand: Chaperone approval',
  deniedSubject: ':no_entry_sign: Chaperone refused a denied subject',
  alert: ':warning: Chaperone policy alert',
  invalidToken: ':closed_lock_with_key: Chaperone rejected an invalid token',
  identityRevoked: ':closed_lock_with_key: Chaperone ended a session: identity revoked',
  offboarded: ':no_entry_sign: Chaperone: offboarded identity',
};

/** "alice (Job/nightly) -> pod ns/agent -> sa -> token sub" */
function chainText(a: NonNullable<Alert['attribution']>): string {
  return [
    a.launcher
      ? `launched by ${a.launcher.username}${a.launcher.unattributed ? ' (unattributed)' : ''}${a.workload ? ` (${a.workload.kind}/${a.workload.name ?? '?'})` : ''}`
      : 'launcher unknown',
    a.pod?.name ? `pod ${a.pod.namespace ?? '?'}/${a.pod.name}` : undefined,
    a.serviceAccount,
    a.token ? `token ${a.token.subject}` : undefined,
  ]
    .filter((p) => p !== undefined)
    .join(' → ');
}

const MAX_STATEMENT = 2000;

/** Slack mrkdwn control characters (https://api.slack.com/reference/surfaces/formatting#escaping). */
export function escapeMrkdwn(s: string): string {
  return s.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;');
}

function truncate(s: string, max: number): string {
  return s.length <= max ? s : `${s.slice(0, max)}… (${s.length - max} more characters)`;
}

/** The `kubectl chaperone` commands that decide the request (see docs/cli.md). */
export function reviewCommands(review: ApprovalReview, sessionId: string | undefined): string[] | undefined {
  const which = review.name ? review.name : sessionId ? `--session ${sessionId}` : undefined;
  if (!which) return undefined;
  return ['approve', 'deny'].map((verb) => `kubectl chaperone ${verb} ${which} -n ${review.namespace}`);
}

export interface SlackPayload {
  text: string;
  blocks: unknown[];
}

export function slackPayload(alert: Alert): SlackPayload {
  const title = TITLES[alert.kind];
  const fields = [
    ['Target', alert.target],
    ['Rule', alert.rule],
    ['Subject', alert.subject],
    ['Session', alert.sessionId],
    ['Attribution', alert.attribution ? chainText(alert.attribution) : undefined],
  ]
    .filter((f): f is [string, string] => f[1] !== undefined && f[1] !== '')
    .map(([name, value]) => ({ type: 'mrkdwn', text: `*${name}*\n${escapeMrkdwn(truncate(value, 500))}` }));
  const blocks: unknown[] = [
    {
      type: 'section',
      text: { type: 'mrkdwn', text: `*${title}*\n${escapeMrkdwn(truncate(alert.message, 1000))}` },
    },
  ];
  if (fields.length > 0) blocks.push({ type: 'section', fields });
  if (alert.statement) {
    // Three backticks inside would end the code block early.
    const statement = truncate(alert.statement, MAX_STATEMENT).replaceAll('```', '`\u200b``');
    blocks.push({
      type: 'section',
      text: { type: 'mrkdwn', text: `\`\`\`${escapeMrkdwn(statement)}\`\`\`` },
    });
  }
  const commands = alert.review ? reviewCommands(alert.review, alert.sessionId) : undefined;
  if (commands) {
    blocks.push({
      type: 'section',
      text: { type: 'mrkdwn', text: `*Decide*\n${commands.map((c) => `\`${escapeMrkdwn(c)}\``).join('\n')}` },
    });
  }
  const where = alert.rule ? ` (target ${alert.target}, rule ${alert.rule})` : ` (target ${alert.target})`;
  const plainTitle = title.replace(/^:[a-z_]+: /, '');
  const decide = commands ? `; decide with: ${commands.join(' | ')}` : '';
  return { text: escapeMrkdwn(`${plainTitle}: ${truncate(alert.message, 1000)}${where}${decide}`), blocks };
}

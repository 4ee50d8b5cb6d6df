// Pure formatting helpers for CLI output.
import type { ListedSession, RecordedEvent, SessionIndex, VerifyReport } from '../recording/index.ts';
import { CliError } from './errors.ts';

/** `2026-11-23`, an ISO time, or a relative age like `15m`, `2h`, `7d` (before `now`). */
export function parseTime(value: string, now = Date.now()): number {
  const rel = /^(\d+)(s|m|h|d|w)$/.exec(value);
  if (rel) {
    const unit = { s: 1e3, m: 60e3, h: 3600e3, d: 86400e3, w: 604800e3 }[
      rel[2] as 's' | 'm' | 'h' | 'd' | 'w'
    ];
    return now - Number(rel[1]) * unit;
  }
  const ms = Date.parse(value);
  if (!Number.isFinite(ms))
    throw new CliError(
      `invalid time ${JSON.stringify(value)}: use an ISO date/time or an age like 15m, 2h, 7d`,
    );
  return ms;
}

export function table(rows: string[][]): string {
  const widths: number[] = [];
  for (const r of rows) for (const [i, c] of r.entries()) widths[i] = Math.max(widths[i] ?? 0, c.length);
  return rows
    .map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  '))
    .join('\n');
}

const time = (ms: number | undefined) =>
  ms === undefined
    ? '-'
    : new Date(ms)
        .toISOString()
        .replace('T', ' ')
        .replace(/\.\d+Z$/, 'Z');

export function sessionsTable(sessions: ListedSession[]): string {
  const rows = [['SESSION', 'STARTED', 'NAMESPACE', 'POD', 'SUBJECT', 'TARGET', 'STATUS', 'EVENTS']];
  for (const s of sessions) {
    rows.push([
      s.sessionId,
      time(s.startedAtMs),
      s.namespace,
      s.pod ?? '-',
      s.subject ?? s.serviceAccount ?? '-',
      s.targetName,
      s.status,
      String(s.events),
    ]);
  }
  return table(rows);
}

export function sessionDetails(s: SessionIndex): string {
  const lines: [string, string][] = [
    ['Session', s.sessionId],
    ['Status', `${s.status}${s.endReason ? ` (${s.endReason})` : ''}`],
    ['Started', time(s.startedAtMs)],
    ['Ended', time(s.endedAtMs)],
    ['Protocol', s.protocol],
    ['Target', `${s.target.name} (${s.target.host}:${s.target.port})`],
    ['Subject', s.subject ?? '-'],
    ['Issuer', s.issuer ?? '-'],
    ['Service account', s.serviceAccount ?? '-'],
    [
      'Pod',
      `${s.namespace}/${s.pod ?? '-'}${s.podUid ? ` (uid ${s.podUid})` : ''}${s.node ? ` on ${s.node}` : ''}`,
    ],
    ['Source', s.source ?? '-'],
    [
      'Policy',
      s.policy
        ? `${s.policy.namespace ? `${s.policy.namespace}/` : ''}${s.policy.name}${s.policy.generation !== undefined ? ` (generation ${s.policy.generation})` : ''}`
        : '-',
    ],
    ['Sidecar', s.sidecarVersion],
    [
      'Labels',
      Object.entries(s.labels)
        .map(([k, v]) => `${k}=${v}`)
        .join(', ') || '-',
    ],
    [
      'Events',
      `${s.events} (${Object.entries(s.countsByKind)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ')})`,
    ],
    ['Segments', `${s.segments} (${s.rawBytes} bytes uncompressed)`],
    ['Gaps', s.gaps > 0 ? `${s.gaps} (${s.lostEvents} events not kept)` : '0'],
    ['Signed by', s.keyId],
    ['Commands', String(s.commands.total)],
  ];
  const w = Math.max(...lines.map(([k]) => k.length));
  const out = lines.map(([k, v]) => `${k.padEnd(w)}  ${v}`);
  for (const c of s.commands.sample) out.push(`${' '.repeat(w)}  - ${c}`);
  return out.join('\n');
}

export function eventLine(e: RecordedEvent): string {
  const payload = JSON.stringify(e.payload);
  const short = payload.length > 240 ? `${payload.slice(0, 237)}...` : payload;
  return `${String(e.seq).padStart(6)}  ${new Date(e.wallMs).toISOString()}  ${e.direction.padEnd(8)}  ${e.kind}  ${short}`;
}

export function verifyLine(r: VerifyReport): string {
  if (r.ok) {
    const notes = [
      r.recovered ? 'recovered' : '',
      r.complete ? '' : 'not ended',
      r.gaps ? `${r.gaps} gaps, ${r.lostEvents} events not kept` : '',
    ]
      .filter(Boolean)
      .join('; ');
    return `OK    ${r.sessionId}  ${r.segments} segments, ${r.events} events${notes ? ` (${notes})` : ''}`;
  }
  return `FAIL  ${r.sessionId}  ${r.failure?.message ?? 'unknown failure'}`;
}

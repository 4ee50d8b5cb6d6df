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

/**
 * Columns padded to their widest cell. Given a terminal width, the widest columns are cut (with
 * `…`) until a line fits; never the first (the id to copy), never below 6 characters, so a very
 * narrow terminal wraps instead.
 */
export function table(rows: string[][], maxWidth?: number): string {
  const widths: number[] = [];
  for (const r of rows) for (const [i, c] of r.entries()) widths[i] = Math.max(widths[i] ?? 0, c.length);
  if (maxWidth !== undefined) {
    const total = () => widths.reduce((a, b) => a + b, 0) + 2 * (widths.length - 1);
    while (total() > maxWidth) {
      const rest = widths.slice(1);
      const widest = 1 + rest.indexOf(Math.max(...rest));
      if (widths.length < 2 || widths[widest]! <= 6) break;
      widths[widest] = Math.max(6, widths[widest]! - (total() - maxWidth));
    }
  }
  const fit = (c: string, w: number) => (c.length > w ? `${c.slice(0, w - 1)}…` : c);
  return rows
    .map((r) =>
      r
        .map((c, i) => (i === r.length - 1 ? fit(c, widths[i]!) : fit(c, widths[i]!).padEnd(widths[i]!)))
        .join('  '),
    )
    .join('\n');
}

const time = (ms: number | undefined) =>
  ms === undefined
    ? '-'
    : new Date(ms)
        .toISOString()
        .replace('T', ' ')
        .replace(/\.\d+Z$/, 'Z');

export function sessionsTable(sessions: ListedSession[], maxWidth?: number): string {
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
  return table(rows, maxWidth);
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
    [
      'Gaps',
      s.gaps > 0
        ? `${s.gaps} (${s.lostEvents} events known lost; \`chaperone sessions cat ${s.sessionId} --gaps\` lists them)`
        : '0',
    ],
    ['Signed by', s.keyId],
    ['Commands', String(s.commands.total)],
  ];
  const w = Math.max(...lines.map(([k]) => k.length));
  const out = lines.map(([k, v]) => `${k.padEnd(w)}  ${v}`);
  for (const c of s.commands.sample) out.push(`${' '.repeat(w)}  - ${c}`);
  return out.join('\n');
}

const num = (v: unknown): number | undefined => (typeof v === 'number' ? v : undefined);
const plural = (n: number, one: string) => `${n} ${one}${n === 1 ? '' : 's'}`;

/**
 * One line for a `recording.gap` payload: what is missing, how much, and why. Auditors read these
 * in `sessions cat` and `verify`, so the cause and the seqs come first, the recorder's reason last.
 */
export function describeGap(p: Record<string, unknown>): string {
  const cause = typeof p.cause === 'string' ? p.cause : 'unknown cause';
  const [from, to, after] = [num(p.fromSeq), num(p.toSeq), num(p.afterSeq)];
  const events = num(p.events) ?? 0;
  const max = num(p.maxEvents);
  let what: string;
  if (from !== undefined && to !== undefined) {
    what = from === to ? `event ${from} lost` : `events ${from}..${to} lost (${plural(events, 'event')})`;
  } else if (cause === 'crash' || (events === 0 && max !== undefined)) {
    what = `events after seq ${after ?? '?'} may be missing (${max !== undefined ? `at most ${max}` : 'bound unknown'}${events > 0 ? `, ${events} known lost` : ''})`;
  } else {
    what = `${plural(events, 'event')} lost${after !== undefined ? ` after seq ${after}` : ''}`;
  }
  const bytes = num(p.bytes);
  const extra = [
    bytes ? `${bytes} bytes` : '',
    num(p.fromWallMs) !== undefined && num(p.toWallMs) !== undefined
      ? `${time(num(p.fromWallMs))} to ${time(num(p.toWallMs))}`
      : '',
  ].filter(Boolean);
  const reason = typeof p.reason === 'string' && p.reason ? ` - ${p.reason}` : '';
  return `GAP ${cause}: ${what}${extra.length ? `; ${extra.join('; ')}` : ''}${reason}`;
}

export function eventLine(e: RecordedEvent): string {
  const prefix = `${String(e.seq).padStart(6)}  ${new Date(e.wallMs).toISOString()}  ${e.direction.padEnd(8)}  ${e.kind}`;
  if (e.kind === 'recording.gap') return `${prefix}  ${describeGap(e.payload)}`;
  const payload = JSON.stringify(e.payload);
  const short = payload.length > 240 ? `${payload.slice(0, 237)}...` : payload;
  return `${prefix}  ${short}`;
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
    const gapLines = r.gapEvents.map((g) => `\n      seq ${g.seq}: ${describeGap(g.payload)}`);
    const more = r.gaps > r.gapEvents.length ? `\n      (${r.gaps - r.gapEvents.length} more gaps)` : '';
    return `OK    ${r.sessionId}  ${r.segments} segments, ${r.events} events${notes ? ` (${notes})` : ''}${gapLines.join('')}${more}`;
  }
  return `FAIL  ${r.sessionId}  ${r.failure?.message ?? 'unknown failure'}`;
}

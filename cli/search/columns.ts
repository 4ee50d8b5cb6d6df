// The Parquet search index's columns: one row per session, built from its index object. The same
// list names each column's Parquet type, so the schema in docs/auditing.md, the writer and the
// reader cannot drift. `date` and `namespace` are not columns in the files: they are the Hive
// partition folders (parquet/sessions/date=…/namespace=…/), as Athena and Trino require.
import type { SchemaElement } from 'hyparquet';
import type { SessionIndex } from '../../recording/index.ts';

/** One session as the search index holds it (snake_case, like the Parquet columns). */
export interface SessionRow {
  session_id: string;
  date: string;
  namespace: string;
  started_at: Date;
  ended_at: Date | null;
  status: string;
  end_reason: string | null;
  protocol: string;
  target_name: string;
  target_host: string;
  target_port: number;
  subject: string | null;
  issuer: string | null;
  service_account: string | null;
  pod: string | null;
  pod_uid: string | null;
  node: string | null;
  source: string | null;
  launched_by: string | null;
  policy_name: string | null;
  policy_namespace: string | null;
  sidecar_version: string;
  events: bigint;
  segments: number;
  gaps: number;
  lost_events: bigint;
  commands_total: bigint;
  /** Up to 50 distinct statement / command texts, each cut to 200 characters (the index's sample). */
  commands: string[];
  blocked: number;
  approved: number;
  denied: number;
  labels: string;
  counts_by_kind: string;
  key_id: string;
  updated_at: Date;
}

type Column = { name: keyof SessionRow; schema: SchemaElement[]; doc: string };

const str = (name: keyof SessionRow, required: boolean, doc: string): Column => ({
  name,
  doc,
  schema: [
    { name, type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: required ? 'REQUIRED' : 'OPTIONAL' },
  ],
});
const int = (name: keyof SessionRow, type: 'INT32' | 'INT64', doc: string): Column => ({
  name,
  doc,
  schema: [{ name, type, repetition_type: 'REQUIRED' }],
});
const time = (name: keyof SessionRow, required: boolean, doc: string): Column => ({
  name,
  doc,
  schema: [
    {
      name,
      type: 'INT64',
      converted_type: 'TIMESTAMP_MILLIS',
      repetition_type: required ? 'REQUIRED' : 'OPTIONAL',
    },
  ],
});

/** The columns, in file order. */
export const COLUMNS: readonly Column[] = [
  str('session_id', true, 'UUIDv7 of the session (sorts by start time)'),
  time('started_at', true, 'session start (UTC, ms)'),
  time('ended_at', false, 'session end; null while open'),
  str('status', true, 'open, ended or recovered'),
  str('end_reason', false, 'why it ended'),
  str('protocol', true, 'postgres, ssh, http, kubernetes'),
  str('target_name', true, 'target name from the SessionPolicy'),
  str('target_host', true, 'upstream host'),
  int('target_port', 'INT32', 'upstream port'),
  str('subject', false, 'token subject (the identity that acted)'),
  str('issuer', false, 'token issuer'),
  str('service_account', false, "the pod's service account"),
  str('pod', false, 'pod name'),
  str('pod_uid', false, 'pod uid'),
  str('node', false, 'node name'),
  str('source', false, 'client address as the sidecar saw it'),
  str('launched_by', false, 'who launched the workload (webhook attribution)'),
  str('policy_name', false, 'SessionPolicy name'),
  str('policy_namespace', false, 'SessionPolicy namespace'),
  str('sidecar_version', true, 'sidecar version that recorded it'),
  int('events', 'INT64', 'events recorded'),
  int('segments', 'INT32', 'sealed segments'),
  int('gaps', 'INT32', 'signed gap events (what is missing is itself recorded)'),
  int('lost_events', 'INT64', 'events known lost in gaps'),
  int('commands_total', 'INT64', 'statements / commands run'),
  {
    name: 'commands',
    doc: 'LIST<STRING>: up to 50 distinct statement / command texts, each cut to 200 characters',
    schema: [
      { name: 'commands', repetition_type: 'REQUIRED', converted_type: 'LIST', num_children: 1 },
      { name: 'list', repetition_type: 'REPEATED', num_children: 1 },
      { name: 'element', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'REQUIRED' },
    ],
  },
  int('blocked', 'INT32', 'policy.blocked events (statements or commands refused)'),
  int('approved', 'INT32', 'approval.granted events'),
  int('denied', 'INT32', 'approval.denied events'),
  str('labels', true, 'JSON object of the session labels'),
  str('counts_by_kind', true, 'JSON object: events per kind'),
  str('key_id', true, 'signing key id of the index object'),
  time('updated_at', true, 'when the index object was last written'),
];

export const PARQUET_SCHEMA: SchemaElement[] = [
  { name: 'schema', num_children: COLUMNS.length },
  ...COLUMNS.flatMap((c) => c.schema),
];

const count = (s: SessionIndex, kind: string) => s.countsByKind[kind] ?? 0;

export function rowOf(s: SessionIndex): SessionRow {
  return {
    session_id: s.sessionId,
    date: s.date,
    namespace: s.namespace,
    started_at: new Date(s.startedAtMs),
    ended_at: s.endedAtMs !== undefined ? new Date(s.endedAtMs) : null,
    status: s.status,
    end_reason: s.endReason ?? null,
    protocol: s.protocol,
    target_name: s.targetName,
    target_host: s.target.host,
    target_port: s.target.port,
    subject: s.subject ?? null,
    issuer: s.issuer ?? null,
    service_account: s.serviceAccount ?? null,
    pod: s.pod ?? null,
    pod_uid: s.podUid ?? null,
    node: s.node ?? null,
    source: s.source ?? null,
    launched_by: s.launchedBy ?? null,
    policy_name: s.policy?.name ?? null,
    policy_namespace: s.policy?.namespace ?? null,
    sidecar_version: s.sidecarVersion,
    events: BigInt(s.events),
    segments: s.segments,
    gaps: s.gaps,
    lost_events: BigInt(s.lostEvents),
    commands_total: BigInt(s.commands.total),
    commands: s.commands.sample,
    blocked: count(s, 'policy.blocked'),
    approved: count(s, 'approval.granted'),
    denied: count(s, 'approval.denied'),
    labels: JSON.stringify(s.labels),
    counts_by_kind: JSON.stringify(s.countsByKind),
    key_id: s.keyId,
    updated_at: new Date(s.updatedAt),
  };
}

/** A row as read back from a Parquet file (hyparquet gives INT64 as bigint, timestamps as Date). */
export function rowFromParquet(raw: Record<string, unknown>, date: string, namespace: string): SessionRow {
  const r = raw as unknown as SessionRow;
  return {
    ...r,
    date,
    namespace,
    events: BigInt(r.events),
    lost_events: BigInt(r.lost_events),
    commands_total: BigInt(r.commands_total),
    commands: r.commands ?? [],
  };
}

/** The row as JSON (bigints as numbers, times as ISO strings): `sessions search --json`. */
export function rowJson(r: SessionRow): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(r))
    out[k] = typeof v === 'bigint' ? Number(v) : v instanceof Date ? v.toISOString() : v;
  return out;
}

/** The schema table of docs/auditing.md (a test keeps the two equal). */
export function schemaTable(): string {
  return COLUMNS.map((c) => {
    const e = c.schema[0]!;
    const type =
      e.converted_type === 'LIST'
        ? 'LIST<STRING>'
        : e.converted_type === 'UTF8'
          ? 'STRING'
          : e.converted_type === 'TIMESTAMP_MILLIS'
            ? 'TIMESTAMP_MILLIS'
            : String(e.type);
    return `| \`${c.name}\` | ${type} | ${e.repetition_type === 'OPTIONAL' ? 'yes' : 'no'} | ${c.doc} |`;
  }).join('\n');
}

// `chaperone sessions search`: answers from the Parquet partitions and, for sessions the last
// `index build` has not seen yet (or saw while still open), from their index objects, so a search
// is never staler than a listing. Partitions are pruned by date and namespace before anything is read.
import type { SegmentStore } from '../../recording/index.ts';
import { partitionDate } from '../../recording/index.ts';
import { rowOf, type SessionRow } from './columns.ts';
import {
  indexedIds,
  indexPartitions,
  mapLimit,
  type Partition,
  readIndexObject,
  readPartition,
} from './partitions.ts';

export interface SearchFilter {
  namespace?: string;
  /** `*` matches any run of characters, as in `sessions ls`. */
  pod?: string;
  /** Token subject or service account. */
  subject?: string;
  target?: string;
  launcher?: string;
  protocol?: string;
  status?: string;
  /** Started at or after / at or before (epoch ms). */
  since?: number;
  until?: number;
  /** Case-insensitive substring of any recorded statement or command text. */
  text?: string;
  /** Only sessions with at least one blocked statement / approved request. */
  blocked?: boolean;
  approved?: boolean;
}

export interface SearchResult {
  sessions: SessionRow[];
  /** Partitions read, and how many sessions came from index objects (not yet compacted). */
  partitions: number;
  fromIndexObjects: number;
}

// The same `*` wildcard as listSessions in recording/reader.ts, over a row.
function glob(pattern: string | undefined, value: string | null): boolean {
  if (pattern === undefined) return true;
  if (value === null) return false;
  if (!pattern.includes('*')) return pattern === value;
  const body = pattern
    .split('*')
    .map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
    .join('.*');
  return new RegExp(`^${body}$`).test(value);
}

export function matches(r: SessionRow, f: SearchFilter): boolean {
  const t = r.started_at.getTime();
  return (
    glob(f.pod, r.pod) &&
    (f.subject === undefined || glob(f.subject, r.subject) || glob(f.subject, r.service_account)) &&
    glob(f.target, r.target_name) &&
    glob(f.launcher, r.launched_by) &&
    (f.protocol === undefined || r.protocol === f.protocol) &&
    (f.status === undefined || r.status === f.status) &&
    (f.since === undefined || t >= f.since) &&
    (f.until === undefined || t <= f.until) &&
    (!f.blocked || r.blocked > 0) &&
    (!f.approved || r.approved > 0) &&
    (f.text === undefined || r.commands.some((c) => c.toLowerCase().includes(f.text!.toLowerCase())))
  );
}

async function searchPartition(
  store: SegmentStore,
  p: Partition,
  f: SearchFilter,
  concurrency: number,
): Promise<{ rows: SessionRow[]; fromIndexObjects: number }> {
  const [ids, compacted] = await Promise.all([indexedIds(store, p), readPartition(store, p)]);
  const known = new Map((compacted ?? []).map((r) => [r.session_id, r]));
  const rows: SessionRow[] = [];
  const missing: string[] = [];
  for (const id of ids) {
    const r = known.get(id);
    if (r && r.status !== 'open') rows.push(r);
    else missing.push(id);
  }
  const fresh = await mapLimit(missing, concurrency, (id) => readIndexObject(store, p, id));
  for (const index of fresh) if (index) rows.push(rowOf(index));
  return { rows: rows.filter((r) => matches(r, f)), fromIndexObjects: missing.length };
}

export async function searchSessions(
  store: SegmentStore,
  f: SearchFilter,
  opts: { concurrency?: number } = {},
): Promise<SearchResult> {
  const partitions: Partition[] = [];
  for await (const p of indexPartitions(store, {
    ...(f.since !== undefined ? { sinceDay: partitionDate(f.since) } : {}),
    ...(f.until !== undefined ? { untilDay: partitionDate(f.until) } : {}),
    ...(f.namespace !== undefined ? { namespace: f.namespace } : {}),
  }))
    partitions.push(p);
  const concurrency = opts.concurrency ?? 16;
  const parts = await mapLimit(partitions, 8, (p) => searchPartition(store, p, f, concurrency));
  const sessions = parts
    .flatMap((p) => p.rows)
    .sort(
      (a, b) =>
        a.started_at.getTime() - b.started_at.getTime() ||
        (a.session_id < b.session_id ? -1 : a.session_id > b.session_id ? 1 : 0),
    );
  return {
    sessions,
    partitions: partitions.length,
    fromIndexObjects: parts.reduce((n, p) => n + p.fromIndexObjects, 0),
  };
}

// Where the search index lives in a store, and how its partitions and the index objects they are
// built from are read. The Parquet files mirror the index objects' Hive partitions:
//   index/date=D/namespace=N/<id>.json          (written by the sidecar, signed, one per session)
//   parquet/sessions/date=D/namespace=N/sessions.parquet   (written by `chaperone index build`)
import { createHash } from 'node:crypto';
import { parquetReadObjects } from 'hyparquet';
import { parquetWriteBuffer } from 'hyparquet-writer';
import { type SegmentStore, type SessionIndex, SessionIndexSchema } from '../../recording/index.ts';
import { COLUMNS, PARQUET_SCHEMA, rowFromParquet, type SessionRow } from './columns.ts';

export const PARQUET_ROOT = 'parquet/sessions/';
export const SEARCH_FORMAT = 'chaperone.search/v1';

export interface Partition {
  date: string;
  namespace: string;
}

export const parquetKey = (p: Partition) =>
  `${PARQUET_ROOT}date=${p.date}/namespace=${p.namespace}/sessions.parquet`;
export const indexFolder = (p: Partition) => `index/date=${p.date}/namespace=${p.namespace}/`;

/** The index objects' partitions (the source of truth), pruned by a date range and a namespace. */
export async function* indexPartitions(
  store: SegmentStore,
  prune: { sinceDay?: string; untilDay?: string; namespace?: string } = {},
): AsyncIterable<Partition> {
  for await (const dateFolder of store.listFolders('index/')) {
    const date = /date=([^/]+)\/$/.exec(dateFolder)?.[1];
    if (!date || (prune.sinceDay && date < prune.sinceDay) || (prune.untilDay && date > prune.untilDay))
      continue;
    for await (const nsFolder of store.listFolders(dateFolder)) {
      const namespace = /namespace=([^/]+)\/$/.exec(nsFolder)?.[1];
      if (!namespace || (prune.namespace !== undefined && namespace !== prune.namespace)) continue;
      yield { date, namespace };
    }
  }
}

/** Session ids of a partition's index objects, from the listing alone. */
export async function indexedIds(store: SegmentStore, p: Partition): Promise<string[]> {
  const ids: string[] = [];
  const folder = indexFolder(p);
  for await (const key of store.list(folder)) {
    const name = key.slice(folder.length);
    if (name.endsWith('.json') && !name.includes('/')) ids.push(name.slice(0, -5));
  }
  return ids;
}

/** One index object, or undefined when it is missing or not a valid index record. */
export async function readIndexObject(
  store: SegmentStore,
  p: Partition,
  sessionId: string,
): Promise<SessionIndex | undefined> {
  const bytes = await store.get(`${indexFolder(p)}${sessionId}.json`);
  if (!bytes) return undefined;
  try {
    const parsed = SessionIndexSchema.safeParse(JSON.parse(bytes.toString('utf8').split('\n')[0] ?? ''));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

/**
 * A partition's rows from its Parquet file; undefined when it has not been built yet or cannot be
 * read (then search answers from the index objects and the next build rewrites it).
 */
export async function readPartition(store: SegmentStore, p: Partition): Promise<SessionRow[] | undefined> {
  const bytes = await store.get(parquetKey(p));
  if (!bytes) return undefined;
  const file = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
  try {
    const raw = await parquetReadObjects({ file });
    return raw.map((r) => rowFromParquet(r, p.date, p.namespace));
  } catch {
    return undefined;
  }
}

export function encodePartition(rows: readonly SessionRow[]): Buffer {
  const sorted = [...rows].sort((a, b) =>
    a.session_id < b.session_id ? -1 : a.session_id > b.session_id ? 1 : 0,
  );
  const buf = parquetWriteBuffer({
    schema: PARQUET_SCHEMA,
    columnData: COLUMNS.map((c) => ({ name: c.name, data: sorted.map((r) => r[c.name]) as never })),
    kvMetadata: [{ key: 'chaperone.format', value: SEARCH_FORMAT }],
    createdBy: 'chaperone index build',
  });
  return Buffer.from(buf);
}

export async function writePartition(store: SegmentStore, p: Partition, rows: readonly SessionRow[]) {
  const body = encodePartition(rows);
  await store.put(parquetKey(p), body, {
    sha256: createHash('sha256').update(body).digest(),
    contentType: 'application/vnd.apache.parquet',
  });
}

/** Runs `fn` over `items` with at most `limit` at once (object stores answer in parallel). */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (t: T) => Promise<R>) {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

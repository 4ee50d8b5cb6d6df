// `chaperone index build`: turns the per-session index objects into one Parquet file per date and
// namespace. Incremental (a partition is read back and only new index objects, and those of
// sessions still open, are fetched), idempotent (a partition whose rows did not change is not
// rewritten) and safe to run from a CronJob: the index objects stay the source of truth, so a
// run that stops half way or races another leaves nothing that the next run does not fix.
import type { SegmentStore } from '../../recording/index.ts';
import { rowOf, type SessionRow } from './columns.ts';
import {
  indexedIds,
  indexPartitions,
  mapLimit,
  type Partition,
  readIndexObject,
  readPartition,
  writePartition,
} from './partitions.ts';

export interface BuildReport {
  partitions: number;
  partitionsWritten: number;
  sessions: number;
  added: number;
  updated: number;
  removed: number;
  /** Index objects that could not be read as index records (left out, counted). */
  unreadable: number;
}

export interface BuildOptions {
  /** Parallel object reads (default 16). */
  concurrency?: number;
  /** Called after each partition: done and total, for a progress bar. */
  onPartition?: (done: number, total: number) => void;
}

const sameRow = (a: SessionRow, b: SessionRow) => a.updated_at.getTime() === b.updated_at.getTime();

export async function buildSearchIndex(store: SegmentStore, opts: BuildOptions = {}): Promise<BuildReport> {
  const concurrency = opts.concurrency ?? 16;
  const partitions: Partition[] = [];
  for await (const p of indexPartitions(store)) partitions.push(p);
  const report: BuildReport = {
    partitions: partitions.length,
    partitionsWritten: 0,
    sessions: 0,
    added: 0,
    updated: 0,
    removed: 0,
    unreadable: 0,
  };
  let done = 0;
  for (const p of partitions) {
    const [ids, existing] = await Promise.all([indexedIds(store, p), readPartition(store, p)]);
    const old = new Map((existing ?? []).map((r) => [r.session_id, r]));
    const listed = new Set(ids);
    // Ended and recovered sessions do not change; open ones are re-read until they end.
    const toRead = ids.filter((id) => old.get(id)?.status !== 'ended' && old.get(id)?.status !== 'recovered');
    const fresh = await mapLimit(toRead, concurrency, (id) => readIndexObject(store, p, id));
    const rows = new Map([...old].filter(([id]) => listed.has(id)));
    let changed = existing === undefined || rows.size !== old.size;
    report.removed += old.size - rows.size;
    for (const [i, index] of fresh.entries()) {
      if (!index || index.sessionId !== toRead[i]) {
        report.unreadable++;
        continue;
      }
      const row = rowOf(index);
      const before = rows.get(row.session_id);
      if (before && sameRow(before, row)) continue;
      if (before) report.updated++;
      else report.added++;
      rows.set(row.session_id, row);
      changed = true;
    }
    report.sessions += rows.size;
    if (changed) {
      await writePartition(store, p, [...rows.values()]);
      report.partitionsWritten++;
    }
    opts.onPartition?.(++done, partitions.length);
  }
  return report;
}

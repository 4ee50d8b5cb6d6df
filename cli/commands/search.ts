// `chaperone sessions search` (from the Parquet index, falling back to index objects) and
// `chaperone index build` (the compactor that writes that index).
import type { Command } from 'commander';
import { table } from '../format.ts';
import { progress } from '../progress.ts';
import { buildSearchIndex } from '../search/build.ts';
import type { SessionRow } from '../search/columns.ts';
import { rowJson } from '../search/columns.ts';
import { type SearchFilter, searchSessions } from '../search/search.ts';
import { storeFromFlag } from '../store.ts';
import { type FilterFlags, filterOptions, type Io, toFilter } from './shared.ts';

type SearchFlags = FilterFlags & {
  launcher?: string;
  protocol?: string;
  status?: string;
  text?: string;
  blocked?: boolean;
  approved?: boolean;
  json?: boolean;
};

export function searchFilter(o: SearchFlags): SearchFilter {
  const f = toFilter(o);
  return {
    ...(f.namespace ? { namespace: f.namespace } : {}),
    ...(f.pod ? { pod: f.pod } : {}),
    ...(f.subject ? { subject: f.subject } : {}),
    ...(f.target ? { target: f.target } : {}),
    ...(f.since !== undefined ? { since: Number(f.since) } : {}),
    ...(f.until !== undefined ? { until: Number(f.until) } : {}),
    ...(o.launcher ? { launcher: o.launcher } : {}),
    ...(o.protocol ? { protocol: o.protocol } : {}),
    ...(o.status ? { status: o.status } : {}),
    ...(o.text ? { text: o.text } : {}),
    ...(o.blocked ? { blocked: true } : {}),
    ...(o.approved ? { approved: true } : {}),
  };
}

const when = (d: Date) =>
  d
    .toISOString()
    .replace('T', ' ')
    .replace(/\.\d+Z$/, 'Z');

export function searchTable(rows: SessionRow[], maxWidth?: number): string {
  const lines = [
    ['SESSION', 'STARTED', 'NAMESPACE', 'POD', 'SUBJECT', 'TARGET', 'STATUS', 'CMDS', 'BLOCKED', 'APPROVED'],
  ];
  for (const r of rows) {
    lines.push([
      r.session_id,
      when(r.started_at),
      r.namespace,
      r.pod ?? '-',
      r.subject ?? r.service_account ?? '-',
      r.target_name,
      r.status,
      String(r.commands_total),
      String(r.blocked),
      String(r.approved),
    ]);
  }
  return table(lines, maxWidth);
}

/** Search flags: the listing filters plus what only the search index answers. */
export function searchOptions(cmd: Command): Command {
  return filterOptions(cmd)
    .option('--launcher <user>', 'only sessions of workloads launched by this user (* wildcards)')
    .option('--protocol <name>', 'only this protocol (postgres, ssh, http, kubernetes)')
    .option('--status <status>', 'only sessions in this state (open, ended, recovered)')
    .option('--text <text>', 'a statement or command containing this text (case-insensitive)')
    .option('--blocked', 'only sessions with a blocked statement or command')
    .option('--approved', 'only sessions with an approved request');
}

export function registerSearch(sessions: Command, io: Io): void {
  searchOptions(sessions.command('search').description('search sessions (Parquet index, then index objects)'))
    .option('--json', 'one session per line (JSON Lines, the Parquet columns)')
    .action(async (o: SearchFlags, cmd: Command) => {
      const store = storeFromFlag(cmd.optsWithGlobals().store);
      const found = await searchSessions(store, searchFilter(o));
      if (o.json) {
        for (const r of found.sessions) io.out(`${JSON.stringify(rowJson(r))}\n`);
        return;
      }
      io.out(`${found.sessions.length === 0 ? 'no sessions' : searchTable(found.sessions, io.columns)}\n`);
    });
}

export function registerIndex(program: Command, io: Io): void {
  const index = program.command('index').description('the Parquet search index in the store');
  index
    .command('build')
    .description('write new and changed sessions into the Parquet index (incremental, idempotent)')
    .option('--concurrency <n>', 'parallel object reads', '16')
    .option('--json', 'the report as JSON')
    .action(async (o: { concurrency: string; json?: boolean }, cmd: Command) => {
      const store = storeFromFlag(cmd.optsWithGlobals().store);
      let bar: ReturnType<typeof progress> | undefined;
      const report = await buildSearchIndex(store, {
        concurrency: Math.max(1, Number(o.concurrency) || 16),
        onPartition: (done, total) => {
          bar ??= progress(io, 'partitions', total);
          bar.tick();
          if (done === total) bar.stop();
        },
      });
      if (o.json) io.out(`${JSON.stringify(report)}\n`);
      else
        io.out(
          `${report.sessions} sessions in ${report.partitions} partitions; ${report.partitionsWritten} partitions written (${report.added} added, ${report.updated} updated, ${report.removed} removed${report.unreadable ? `, ${report.unreadable} unreadable index objects left out` : ''})\n`,
        );
    });
}

// `chaperone sessions ls|show|cat`: what the index says, and a session's events.
import type { Command } from 'commander';
import { getSessionIndex, type ListedSession, listSessions, readSession } from '../../recording/index.ts';
import { CliError } from '../errors.ts';
import { eventLine, sessionDetails, sessionsTable } from '../format.ts';
import { storeFromFlag } from '../store.ts';
import { type FilterFlags, filterOptions, type Io, readPublicKeys, toFilter } from './shared.ts';

/** Adds `sessions` and its reading commands; returns it so other modules add subcommands. */
export function registerSessions(program: Command, io: Io): Command {
  const sessions = program.command('sessions').description('recorded sessions');

  filterOptions(sessions.command('ls').description('list sessions from the index'))
    .option('--json', 'one index record per line (JSON Lines)')
    .option('--launcher <user>', 'only sessions of workloads launched by this user (* wildcards)')
    .action(async (o: FilterFlags & { json?: boolean; launcher?: string }, cmd: Command) => {
      const store = storeFromFlag(cmd.optsWithGlobals().store);
      const found: ListedSession[] = [];
      const filter = { ...toFilter(o), ...(o.launcher ? { launcher: o.launcher } : {}) };
      for await (const s of listSessions(store, filter)) {
        if (o.json) io.out(`${JSON.stringify(s)}\n`);
        else found.push(s);
      }
      if (!o.json) io.out(`${found.length === 0 ? 'no sessions' : sessionsTable(found, io.columns)}\n`);
    });

  sessions
    .command('show <id>')
    .description('what the index says about one session')
    .option('--json', 'the index record as JSON')
    .action(async (id: string, o: { json?: boolean }, cmd: Command) => {
      const store = storeFromFlag(cmd.optsWithGlobals().store);
      const index = await getSessionIndex(store, id);
      if (!index) throw new CliError(`session ${id} not found in ${store.url}`);
      io.out(o.json ? `${JSON.stringify(index, null, 2)}\n` : `${sessionDetails(index)}\n`);
    });

  sessions
    .command('cat <id>')
    .description("print a session's events (hashes and chain are checked while reading)")
    .option('--json', 'one event per line (JSON Lines)')
    .option('--gaps', 'only the recording.gap events (what is missing and why)')
    .option('--public-key <pem...>', 'also check signatures with these public keys')
    .action(async (id: string, o: { json?: boolean; gaps?: boolean; publicKey?: string[] }, cmd: Command) => {
      const store = storeFromFlag(cmd.optsWithGlobals().store);
      const keys = o.publicKey ? await readPublicKeys(o.publicKey) : undefined;
      for await (const e of readSession(store, id, keys ? { publicKeys: keys } : {})) {
        if (o.gaps && e.kind !== 'recording.gap') continue;
        io.out(o.json ? `${JSON.stringify(e)}\n` : `${eventLine(e)}\n`);
      }
    });

  return sessions;
}

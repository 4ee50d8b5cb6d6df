// `chaperone verify`: checksums, chain and signatures of one session or of every listed one.
import type { Command } from 'commander';
import { listSessions, type VerifyReport, verifySession } from '../../recording/index.ts';
import { CliError } from '../errors.ts';
import { verifyLine } from '../format.ts';
import { progress } from '../progress.ts';
import { storeFromFlag } from '../store.ts';
import {
  type FilterFlags,
  filterOptions,
  type Io,
  readPublicKeys,
  toFilter,
  VERIFY_FAILED_EXIT,
} from './shared.ts';

export function registerVerify(program: Command, io: Io): void {
  filterOptions(
    program
      .command('verify [id]')
      .description('verify checksums, chain and signatures of one session (or --all)')
      .requiredOption('--public-key <pem...>', 'trusted Ed25519 public key file(s)')
      .option('--all', 'every session in the index (filters apply)')
      .option(
        '--require-ended',
        'also fail sessions without their final segment (a tail can be cut without Object Lock)',
      )
      .option('--json', 'one report per line (JSON Lines)'),
  ).action(
    async (
      id: string | undefined,
      o: FilterFlags & { publicKey: string[]; all?: boolean; json?: boolean; requireEnded?: boolean },
      cmd: Command,
    ) => {
      if (!id && !o.all) throw new CliError('verify needs a session id or --all');
      if (id && o.all) throw new CliError('give a session id or --all, not both');
      const store = storeFromFlag(cmd.optsWithGlobals().store);
      const keys = await readPublicKeys(o.publicKey);
      const ids: string[] = [];
      if (id) ids.push(id);
      else for await (const s of listSessions(store, toFilter(o))) ids.push(s.sessionId);
      let failed = 0;
      // On a terminal, a bar on stderr while sessions are read; results go to stdout as they come.
      const bar = progress(io, 'verifying', ids.length);
      try {
        for (const sid of ids) {
          const report: VerifyReport = await verifySession(store, sid, keys);
          if (!report.ok || (o.requireEnded && !report.complete)) failed++;
          io.out(o.json ? `${JSON.stringify(report)}\n` : `${verifyLine(report)}\n`);
          bar.tick();
        }
      } finally {
        bar.stop();
      }
      if (o.all && !o.json) io.out(`${ids.length - failed} of ${ids.length} sessions verified\n`);
      if (failed > 0) throw new CliError('', VERIFY_FAILED_EXIT);
    },
  );
}

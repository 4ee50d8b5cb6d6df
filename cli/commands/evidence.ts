// `chaperone evidence <ids...> | --filters -o bundle.zip`: sessions as stored, the public keys and
// how to check them with sha256sum and openssl alone (see cli/evidence/).
import type { Command } from 'commander';
import { CliError } from '../errors.ts';
import { writeEvidenceBundle } from '../evidence/bundle.ts';
import { progress } from '../progress.ts';
import { searchSessions } from '../search/search.ts';
import { storeFromFlag } from '../store.ts';
import { searchFilter, searchOptions } from './search.ts';
import { type Io, readPublicKeys, VERIFY_FAILED_EXIT } from './shared.ts';

export function registerEvidence(program: Command, io: Io): void {
  searchOptions(
    program
      .command('evidence [ids...]')
      .description('write an evidence bundle (zip) that a third party checks with sha256sum and openssl')
      .requiredOption('-o, --output <file>', 'the zip to write')
      .requiredOption(
        '--public-key <pem...>',
        'the signing public key(s): included, and used to verify first',
      )
      .option('--reason <text>', 'why the bundle was made (a case or request number), kept in bundle.json')
      .option('--json', 'what was bundled, as JSON'),
  ).action(
    async (
      ids: string[],
      o: Parameters<typeof searchFilter>[0] & {
        output: string;
        publicKey: string[];
        reason?: string;
        json?: boolean;
      },
      cmd: Command,
    ) => {
      const store = storeFromFlag(cmd.optsWithGlobals().store);
      const keys = await readPublicKeys(o.publicKey);
      const filter = searchFilter(o);
      const filtered = Object.keys(filter).length > 0;
      if (ids.length > 0 && filtered) throw new CliError('give session ids or filters, not both');
      if (ids.length === 0 && !filtered)
        throw new CliError('evidence needs session ids or at least one filter');
      const sessions =
        ids.length > 0
          ? ids.map((sessionId) => ({ sessionId, why: 'named on the command line' }))
          : (await searchSessions(store, filter)).sessions.map((r) => ({
              sessionId: r.session_id,
              why: `matched the filter ${JSON.stringify(filter)}`,
            }));
      if (sessions.length === 0) throw new CliError('no sessions match');
      const bar = progress(io, 'sessions', sessions.length);
      let summary: Awaited<ReturnType<typeof writeEvidenceBundle>>;
      try {
        summary = await writeEvidenceBundle({
          store,
          sessions,
          publicKeys: keys,
          output: o.output,
          ...(o.reason ? { reason: o.reason } : {}),
          selection: ids.length > 0 ? { ids } : { filter },
          onSession: () => bar.tick(),
        });
      } finally {
        bar.stop();
      }
      if (o.json) {
        io.out(
          `${JSON.stringify({
            output: summary.output,
            verified: summary.verified,
            keys: summary.keys,
            sessions: summary.sessions.map((s) => ({
              sessionId: s.sessionId,
              ok: s.verification.ok,
              files: s.files.length,
              ...(s.verification.failure ? { failure: s.verification.failure.message } : {}),
            })),
          })}\n`,
        );
      } else {
        for (const s of summary.sessions)
          io.out(
            `${s.verification.ok ? 'OK  ' : 'FAIL'}  ${s.sessionId}  ${s.files.length} files${s.verification.failure ? `  ${s.verification.failure.message}` : ''}\n`,
          );
        io.out(
          `wrote ${summary.output}: ${summary.sessions.length} sessions; check it with VERIFY.md inside\n`,
        );
      }
      // The bundle is written either way (it holds what is stored); the exit code says it failed.
      if (!summary.verified) throw new CliError('', VERIFY_FAILED_EXIT);
    },
  );
}

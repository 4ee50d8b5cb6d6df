// The `chaperone` command line: one module per command in commands/; this file assembles them and
// turns errors into exit codes.
import { Command } from 'commander';
import { SessionNotFoundError } from '../recording/index.ts';
import { registerEvidence } from './commands/evidence.ts';
import { registerExport } from './commands/export.ts';
import { registerKeygen } from './commands/keygen.ts';
import { registerPlay } from './commands/play.ts';
import { registerIndex, registerSearch } from './commands/search.ts';
import { registerServe } from './commands/serve.ts';
import { registerSessions } from './commands/sessions.ts';
import { type Io, USAGE_EXIT } from './commands/shared.ts';
import { registerVerify } from './commands/verify.ts';
import { registerVersion } from './commands/version.ts';
import { CliError } from './errors.ts';

export type { Io } from './commands/shared.ts';

export function buildProgram(io: Io): Command {
  const program = new Command('chaperone')
    .description('Chaperone recordings: list, show, print, export and verify sessions; make signing keys.')
    .option('--store <url>', 'file:///dir or s3://bucket/prefix (default: $CHAPERONE_STORE)')
    .configureOutput({ writeOut: (s) => io.out(s), writeErr: (s) => io.err(s) })
    .showHelpAfterError()
    .exitOverride();

  const sessions = registerSessions(program, io);
  registerExport(sessions, io);
  registerSearch(sessions, io);
  registerIndex(program, io);
  registerEvidence(program, io);
  registerPlay(sessions, io);
  registerVerify(program, io);
  registerKeygen(program, io);
  registerServe(program, io);
  registerVersion(program, io);
  return program;
}

/** Runs the CLI; returns the exit code. Errors become one line on stderr, never a stack. */
export async function run(argv: string[], io: Io): Promise<number> {
  const program = buildProgram(io);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (err) {
    const e = err as Error & { code?: string; exitCode?: number };
    if (e.code?.startsWith('commander.')) {
      // Commander already printed usage or help; usage errors exit 2 like other Unix tools.
      return e.code === 'commander.helpDisplayed' || e.code === 'commander.version' ? 0 : USAGE_EXIT;
    }
    if (err instanceof CliError) {
      if (err.message) io.err(`chaperone: ${err.message}\n`);
      return err.exitCode;
    }
    if (err instanceof SessionNotFoundError) {
      io.err(`chaperone: ${err.message}\n`);
      return 1;
    }
    io.err(`chaperone: ${(e.message || String(err)).split('\n')[0]}\n`);
    if (process.env.CHAPERONE_DEBUG) io.err(`${e.stack}\n`);
    return 1;
  }
}

// The `chaperone` command line: list, show, print and verify recordings; make signing keys.

import { constants } from 'node:fs';
import { access, readFile, writeFile } from 'node:fs/promises';
import { Command } from 'commander';
import {
  generateSigningKey,
  getSessionIndex,
  type ListedSession,
  listSessions,
  loadPublicKeys,
  readSession,
  type SessionFilter,
  SessionNotFoundError,
  type VerifyReport,
  verifySession,
} from '../recording/index.ts';
import { CliError } from './errors.ts';
import { eventLine, parseTime, sessionDetails, sessionsTable, verifyLine } from './format.ts';
import { storeFromFlag } from './store.ts';
import { buildInfo, versionLine } from './version.ts';

export interface Io {
  out(text: string): void;
  err(text: string): void;
}

const VERIFY_FAILED_EXIT = 3;
const USAGE_EXIT = 2;

async function readPublicKeys(files: string[]): Promise<string[]> {
  const pems: string[] = [];
  for (const f of files) {
    let pem: string;
    try {
      pem = await readFile(f, 'utf8');
    } catch (err) {
      throw new CliError(
        `cannot read public key file ${f}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      );
    }
    if (/-----BEGIN (ENCRYPTED |)PRIVATE KEY-----/.test(pem)) {
      // A public key can be derived from it, but the secret signing key must never travel to auditors.
      throw new CliError(
        `${f} is a private key; pass the public key (chaperone keygen writes it as <name>.pub)`,
      );
    }
    try {
      loadPublicKeys(pem);
    } catch (err) {
      throw new CliError(`${f}: ${(err as Error).message}`);
    }
    pems.push(pem);
  }
  return pems;
}

interface FilterFlags {
  namespace?: string;
  pod?: string;
  subject?: string;
  target?: string;
  since?: string;
  until?: string;
}

function toFilter(o: FilterFlags): SessionFilter {
  return {
    ...(o.namespace ? { namespace: o.namespace } : {}),
    ...(o.pod ? { pod: o.pod } : {}),
    ...(o.subject ? { subject: o.subject } : {}),
    ...(o.target ? { target: o.target } : {}),
    ...(o.since ? { since: parseTime(o.since) } : {}),
    ...(o.until ? { until: parseTime(o.until) } : {}),
  };
}

function filterOptions(cmd: Command): Command {
  return cmd
    .option('--namespace <ns>', 'only sessions of this namespace')
    .option('--pod <name>', 'only sessions of this pod (* wildcards)')
    .option('--subject <subject>', 'only sessions of this token subject or service account (* wildcards)')
    .option('--target <name>', 'only sessions to this target (* wildcards)')
    .option('--since <time>', 'started at or after (ISO time, or an age like 15m, 2h, 7d)')
    .option('--until <time>', 'started at or before (ISO time, or an age)');
}

export function buildProgram(io: Io): Command {
  const program = new Command('chaperone')
    .description('Chaperone recordings: list, show, print and verify sessions; make signing keys.')
    .option('--store <url>', 'file:///dir or s3://bucket/prefix (default: $CHAPERONE_STORE)')
    .configureOutput({ writeOut: (s) => io.out(s), writeErr: (s) => io.err(s) })
    .showHelpAfterError()
    .exitOverride();

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
      if (!o.json) io.out(`${found.length === 0 ? 'no sessions' : sessionsTable(found)}\n`);
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
      for (const sid of ids) {
        const report: VerifyReport = await verifySession(store, sid, keys);
        if (!report.ok || (o.requireEnded && !report.complete)) failed++;
        io.out(o.json ? `${JSON.stringify(report)}\n` : `${verifyLine(report)}\n`);
      }
      if (o.all && !o.json) io.out(`${ids.length - failed} of ${ids.length} sessions verified\n`);
      if (failed > 0) throw new CliError('', VERIFY_FAILED_EXIT);
    },
  );

  program
    .command('keygen')
    .description('write a new Ed25519 signing key pair (<out>.key, mode 0600, and <out>.pub)')
    .option('--out <path>', 'path without extension', 'chaperone-signing')
    .option('--force', 'replace existing files')
    .action(async (o: { out: string; force?: boolean }) => {
      const files = { key: `${o.out}.key`, pub: `${o.out}.pub` };
      if (!o.force) {
        for (const f of Object.values(files)) {
          const exists = await access(f, constants.F_OK).then(
            () => true,
            () => false,
          );
          if (exists) throw new CliError(`${f} already exists (use --force to replace it)`);
        }
      }
      const k = generateSigningKey();
      await writeFile(files.key, k.privateKeyPem, { mode: 0o600 });
      await writeFile(files.pub, k.publicKeyPem, { mode: 0o644 });
      io.out(`key id ${k.keyId}\nprivate key ${files.key}\npublic key ${files.pub}\n`);
    });

  program
    .command('version')
    .description('print the version and the source revision it was built from')
    .option('--json', 'as JSON')
    .action((o: { json?: boolean }) => {
      io.out(o.json ? `${JSON.stringify(buildInfo())}\n` : `${versionLine('chaperone')}\n`);
    });

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

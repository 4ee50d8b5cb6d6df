// The `kubectl chaperone` plugin (an executable named kubectl-chaperone on PATH): reviewers list,
// approve, deny and watch SessionApprovals; `sessions` lists the namespace's recordings; `policy
// check` shows what admission would do to a pod. kubectl hands the plugin its arguments as given,
// so the plugin reads --kubeconfig, --context and -n itself.
import { Command } from 'commander';
import { CliError, type Io, parseTime, sessionsTable, versionLine } from '../cli/index.ts';
import { SessionNotFoundError } from '../recording/index.ts';
import {
  approvalsTable,
  decide,
  decidedLine,
  describeApproval,
  listApprovals,
  pendingOf,
  pendingOfSession,
  watchLine,
} from './approvals.ts';
import { type KubeFlags, loadKube } from './kube.ts';
import { checkPod, describeCheck, REFUSED_EXIT, readPods } from './policy-check.ts';
import { namespaceSessions, policyStores } from './sessions.ts';
import { watchApprovals } from './watch.ts';

const USAGE_EXIT = 2;

export interface PluginIo extends Io {
  /** Terminal width for tables (undefined: not a terminal, print whole lines). */
  columns?: number | undefined;
  /** Ends `watch` (Ctrl-C). */
  signal?: AbortSignal;
}

function kubeOptions(cmd: Command): Command {
  return cmd
    .option('-n, --namespace <ns>', 'namespace (default: the context’s)')
    .option('--kubeconfig <file>', 'kubeconfig file (default: $KUBECONFIG, ~/.kube/config)')
    .option('--context <name>', 'kubeconfig context');
}

const kubeFlags = (cmd: Command): KubeFlags => cmd.optsWithGlobals() as KubeFlags;

export function buildPlugin(io: PluginIo): Command {
  const program = new Command('kubectl chaperone')
    .description('Chaperone for reviewers: decide SessionApprovals, list recorded sessions, check pods.')
    .configureOutput({ writeOut: (s) => io.out(s), writeErr: (s) => io.err(s) })
    .showHelpAfterError()
    .exitOverride();
  kubeOptions(program);

  program
    .command('approvals')
    .description('pending SessionApprovals (all namespaces you may list, else the current one)')
    .option('-A, --all-namespaces', 'all namespaces (fails if you may not list them)')
    .option('--json', 'one JSON object per pending request, one per line')
    .action(async (o: { allNamespaces?: boolean; json?: boolean }, cmd: Command) => {
      const kube = loadKube(kubeFlags(cmd));
      const listed = await listApprovals(kube, o.allNamespaces === true);
      if (listed.note) io.err(`kubectl-chaperone: ${listed.note}\n`);
      const now = Date.now();
      const pending = pendingOf(listed.items, now);
      if (o.json) {
        for (const a of pending) io.out(`${JSON.stringify(describeApproval(a, now))}\n`);
        return;
      }
      if (pending.length === 0) {
        io.out(`no pending approvals${listed.namespace ? ` in namespace ${listed.namespace}` : ''}\n`);
        return;
      }
      io.out(`${approvalsTable(pending, io.columns, now)}\n`);
    });

  for (const verb of ['approve', 'deny'] as const) {
    program
      .command(`${verb} [name]`)
      .description(
        verb === 'approve'
          ? 'approve a pending request (you are recorded as the approver)'
          : 'deny a pending request (you are recorded as the reviewer)',
      )
      .option('--reason <text>', 'why (kept in the recording)')
      .option('--session <id>', 'the pending request of this session (instead of a name)')
      .action(async (name: string | undefined, o: { reason?: string; session?: string }, cmd: Command) => {
        if (!name === !o.session)
          throw new CliError(`${verb} needs a SessionApproval name or --session <id>`, USAGE_EXIT);
        const kube = loadKube(kubeFlags(cmd));
        let target = name;
        if (!target) {
          const found = await pendingOfSession(kube, o.session!);
          target = found.metadata.name;
          kube.namespace = found.metadata.namespace;
          kube.namespaceGiven = true;
        }
        const decided = await decide(kube, target, verb === 'approve', o.reason);
        io.out(`${decidedLine(decided)}\n`);
      });
  }

  program
    .command('watch')
    .description('print pending requests as they arrive and their outcome (one line each)')
    .option('-A, --all-namespaces', 'all namespaces (fails if you may not list them)')
    .option('--bell', 'ring the terminal bell for each new request (default when stdout is a terminal)')
    .option('--no-bell', 'never ring the bell')
    .option('--json', 'one JSON object per change, one per line')
    .action(async (o: { allNamespaces?: boolean; bell?: boolean; json?: boolean }, cmd: Command) => {
      const kube = loadKube(kubeFlags(cmd));
      const bell = o.bell ?? io.columns !== undefined;
      await watchApprovals(kube, {
        allNamespaces: o.allNamespaces === true,
        signal: io.signal ?? new AbortController().signal,
        onNote: (note) => io.err(`kubectl-chaperone: ${note}\n`),
        onChange: (a, state) => {
          if (o.json) io.out(`${JSON.stringify({ ...describeApproval(a), state })}\n`);
          else io.out(`${watchLine(a)}${state === 'pending' && bell ? '\u0007' : ''}\n`);
        },
      });
    });

  program
    .command('sessions')
    .description('recent sessions of the namespace, from the store its SessionPolicies record to')
    .option('--policy <name>', 'only the store of this SessionPolicy')
    .option('--since <time>', 'started at or after (ISO time, or an age like 15m, 2h, 7d)', '24h')
    .option('--pod <name>', 'only sessions of this pod (* wildcards)')
    .option('--endpoint <url>', 'S3 endpoint to use instead of the policy’s (or set AWS_ENDPOINT_URL)')
    .option('--json', 'one index record per line (JSON Lines)')
    .action(
      async (
        o: { policy?: string; since: string; pod?: string; endpoint?: string; json?: boolean },
        cmd: Command,
      ) => {
        const kube = loadKube(kubeFlags(cmd));
        const stores = await policyStores(kube, o.policy);
        const filter = {
          namespace: kube.namespace,
          since: parseTime(o.since),
          ...(o.pod ? { pod: o.pod } : {}),
        };
        for (const choice of stores) {
          const found = await namespaceSessions(choice, filter, o.endpoint);
          if (o.json) {
            for (const s of found) io.out(`${JSON.stringify(s)}\n`);
            continue;
          }
          if (stores.length > 1)
            io.out(`${choice.store.url} (SessionPolicy ${choice.policies.join(', ')}):\n`);
          io.out(
            `${found.length === 0 ? `no sessions in namespace ${kube.namespace} since ${o.since}` : sessionsTable(found)}\n`,
          );
        }
      },
    );

  const policy = program.command('policy').description('SessionPolicy tools');
  policy
    .command('check <file>')
    .description('what admission would do to the pod(s) in <file> (- for stdin): a server-side dry run')
    .option('--json', 'the result as JSON (with the pod as admission returned it)')
    .action(async (file: string, o: { json?: boolean }, cmd: Command) => {
      const kube = loadKube(kubeFlags(cmd));
      let refused = false;
      for (const pod of await readPods(file)) {
        const result = await checkPod(kube, pod);
        if (result.verdict === 'refused') refused = true;
        io.out(o.json ? `${JSON.stringify(result)}\n` : `${describeCheck(result)}\n`);
      }
      if (refused) throw new CliError('', REFUSED_EXIT);
    });

  program
    .command('version')
    .description('print the version and the source revision it was built from')
    .action(() => io.out(`${versionLine('kubectl-chaperone')}\n`));

  return program;
}

/** Runs the plugin; returns the exit code. Errors are one line on stderr. */
export async function runPlugin(argv: string[], io: PluginIo): Promise<number> {
  const program = buildPlugin(io);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (err) {
    const e = err as Error & { code?: string };
    if (e.code?.startsWith('commander.'))
      return e.code === 'commander.helpDisplayed' || e.code === 'commander.version' ? 0 : USAGE_EXIT;
    if (err instanceof CliError) {
      if (err.message) io.err(`kubectl-chaperone: ${err.message}\n`);
      return err.exitCode;
    }
    if (err instanceof SessionNotFoundError) {
      io.err(`kubectl-chaperone: ${err.message}\n`);
      return 1;
    }
    io.err(`kubectl-chaperone: ${(e.message || String(err)).split('\n')[0]}\n`);
    if (process.env.CHAPERONE_DEBUG) io.err(`${e.stack}\n`);
    return 1;
  }
}

// `chaperone version`: what auditors quote in a report.
import type { Command } from 'commander';
import { buildInfo, versionLine } from '../version.ts';
import type { Io } from './shared.ts';

export function registerVersion(program: Command, io: Io): void {
  program
    .command('version')
    .description('print the version and the source revision it was built from')
    .option('--json', 'as JSON')
    .action((o: { json?: boolean }) => {
      io.out(o.json ? `${JSON.stringify(buildInfo())}\n` : `${versionLine('chaperone')}\n`);
    });
}

// What several commands share: trusted public keys from files, and the session filter flags.
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { loadPublicKeys, type SessionFilter } from '../../recording/index.ts';
import { CliError } from '../errors.ts';
import { parseTime } from '../format.ts';

export interface Io {
  out(text: string): void;
  err(text: string): void;
  /** Terminal width when stdout is a terminal: tables are fitted to it. */
  columns?: number;
  /** stderr is a terminal: progress bars are drawn there (never into a pipe or a log). */
  errIsTTY?: boolean;
}

export const VERIFY_FAILED_EXIT = 3;
export const USAGE_EXIT = 2;

export async function readPublicKeys(files: string[]): Promise<string[]> {
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

export interface FilterFlags {
  namespace?: string;
  pod?: string;
  subject?: string;
  target?: string;
  since?: string;
  until?: string;
}

export function toFilter(o: FilterFlags): SessionFilter {
  return {
    ...(o.namespace ? { namespace: o.namespace } : {}),
    ...(o.pod ? { pod: o.pod } : {}),
    ...(o.subject ? { subject: o.subject } : {}),
    ...(o.target ? { target: o.target } : {}),
    ...(o.since ? { since: parseTime(o.since) } : {}),
    ...(o.until ? { until: parseTime(o.until) } : {}),
  };
}

export function filterOptions(cmd: Command): Command {
  return cmd
    .option('--namespace <ns>', 'only sessions of this namespace')
    .option('--pod <name>', 'only sessions of this pod (* wildcards)')
    .option('--subject <subject>', 'only sessions of this token subject or service account (* wildcards)')
    .option('--target <name>', 'only sessions to this target (* wildcards)')
    .option('--since <time>', 'started at or after (ISO time, or an age like 15m, 2h, 7d)')
    .option('--until <time>', 'started at or before (ISO time, or an age)');
}

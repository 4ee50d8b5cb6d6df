// `chaperone keygen`: a new Ed25519 signing key pair for the sidecar, public half for auditors.
import { constants } from 'node:fs';
import { access, writeFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { generateSigningKey } from '../../recording/index.ts';
import { CliError } from '../errors.ts';
import type { Io } from './shared.ts';

export function registerKeygen(program: Command, io: Io): void {
  program
    .command('keygen')
    .description('write a new Ed25519 signing key pair (<out>.key, mode 0600, and <out>.pub)')
    .option('--out <path>', 'path without extension', 'chaperone-signing')
    .option('--force', 'replace existing files')
    .option('--json', 'key id and file names as JSON')
    .action(async (o: { out: string; force?: boolean; json?: boolean }) => {
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
      io.out(
        o.json
          ? `${JSON.stringify({ keyId: k.keyId, privateKey: files.key, publicKey: files.pub })}\n`
          : `key id ${k.keyId}\nprivate key ${files.key}\npublic key ${files.pub}\n`,
      );
    });
}

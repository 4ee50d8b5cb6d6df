// `chaperone sessions export <id> --format <f>`: a session in a standard format, streamed to a file
// or stdout. Events are read with hashes (and signatures, given keys) checked, like `cat`.

import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import type { Command } from 'commander';
import { readSession } from '../../recording/index.ts';
import { CliError } from '../errors.ts';
import { type ExportSink, exporterFor, exporters } from '../export/index.ts';
import { storeFromFlag } from '../store.ts';
import { type Io, readPublicKeys } from './shared.ts';

export function registerExport(sessions: Command, io: Io): void {
  sessions
    .command('export <id>')
    .description('write a session in a standard format')
    .requiredOption('--format <format>', `one of: ${exporters.map((e) => e.format).join(', ')}`)
    .option('-o, --output <file>', 'write to this file instead of stdout')
    .option('--channel <id>', 'terminal formats: the channel to export (default: the first)')
    .option('--public-key <pem...>', 'also check signatures with these public keys')
    .action(
      async (
        id: string,
        o: { format: string; output?: string; channel?: string; publicKey?: string[] },
        cmd: Command,
      ) => {
        const exporter = exporterFor(o.format);
        if (!exporter) {
          throw new CliError(
            `unknown format ${o.format} (one of: ${exporters.map((e) => e.format).join(', ')})`,
          );
        }
        const store = storeFromFlag(cmd.optsWithGlobals().store);
        const keys = o.publicKey ? await readPublicKeys(o.publicKey) : undefined;
        const events = readSession(store, id, keys ? { publicKeys: keys } : {});
        const options = o.channel ? { channel: o.channel } : {};
        if (!o.output) {
          const sink: ExportSink = { write: async (t) => io.out(t) };
          await exporter.write(events, sink, options);
          return;
        }
        const file = createWriteStream(o.output);
        const sink: ExportSink = {
          async write(t) {
            if (!file.write(t)) await once(file, 'drain');
          },
        };
        try {
          await exporter.write(events, sink, options);
        } finally {
          file.end();
          await once(file, 'close');
        }
      },
    );
}

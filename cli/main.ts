#!/usr/bin/env node
// Entry point of the `chaperone` CLI (node cli/main.ts ...).
import { run } from './program.ts';

// `chaperone sessions cat <id> | head` closes the pipe early: that is the reader's choice, not an error.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw err;
  });
}

// No top-level await: the release bundles this file as CommonJS (single executables need it).
void run(process.argv.slice(2), {
  out: (s) => process.stdout.write(s),
  err: (s) => process.stderr.write(s),
  ...(process.stdout.isTTY ? { columns: process.stdout.columns } : {}),
  errIsTTY: process.stderr.isTTY === true,
}).then((code) => {
  process.exitCode = code;
});

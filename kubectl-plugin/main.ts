#!/usr/bin/env node
// Entry point of the kubectl plugin: kubectl runs `kubectl-chaperone` for `kubectl chaperone ...`.
import { runPlugin } from './program.ts';

for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw err;
  });
}

const stop = new AbortController();
process.once('SIGINT', () => stop.abort());
process.once('SIGTERM', () => stop.abort());

// No top-level await: the release bundles this file as CommonJS (single executables need it).
void runPlugin(process.argv.slice(2), {
  out: (s) => process.stdout.write(s),
  err: (s) => process.stderr.write(s),
  columns: process.stdout.isTTY ? process.stdout.columns : undefined,
  signal: stop.signal,
}).then((code) => {
  process.exitCode = code;
  // An interrupted watch may leave keep-alive sockets behind: nothing is left to do.
  if (stop.signal.aborted) process.exit(code);
});

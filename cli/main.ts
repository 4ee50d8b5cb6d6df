#!/usr/bin/env node
// Entry point of the `chaperone` CLI (node cli/main.ts ...).
import { run } from './program.ts';

const code = await run(process.argv.slice(2), {
  out: (s) => process.stdout.write(s),
  err: (s) => process.stderr.write(s),
});
process.exitCode = code;

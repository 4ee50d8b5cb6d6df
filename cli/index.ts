// Public API of cli/.
export { CliError } from './errors.ts';
export { buildProgram, type Io, run } from './program.ts';

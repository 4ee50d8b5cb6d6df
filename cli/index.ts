// Public API of cli/.
export { CliError } from './errors.ts';
export { parseTime, sessionsTable } from './format.ts';
export { buildProgram, type Io, run } from './program.ts';
export { type BuildInfo, buildInfo, versionLine } from './version.ts';

// Entry of the single executable: the binary's own name decides which program runs.
import { programName, start } from './dispatch.ts';

start(programName(process.argv0, undefined));

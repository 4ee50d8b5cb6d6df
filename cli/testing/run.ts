// The CLI run in this process (no child process), its output captured: for tests of commands
// whose output is the point.
import { run } from '../program.ts';

export interface Captured {
  code: number;
  out: string;
  err: string;
}

export async function runCaptured(args: string[]): Promise<Captured> {
  let out = '';
  let err = '';
  const code = await run(args, {
    out: (t) => {
      out += t;
    },
    err: (t) => {
      err += t;
    },
  });
  return { code, out, err };
}

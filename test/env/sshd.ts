import type { RunningPart } from './part.ts';
import type { SshdInfo } from './types.ts';

/** Starts the real sshd server on 127.0.0.1 with its state under `dir`. */
export async function startSshd(dir: string): Promise<RunningPart<SshdInfo>> {
  throw new Error(`test env part sshd is not implemented yet (dir ${dir})`);
}

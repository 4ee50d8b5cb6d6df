import type { RunningPart } from './part.ts';
import type { KubeInfo } from './types.ts';

/** Starts the real kube server on 127.0.0.1 with its state under `dir`. */
export async function startKube(dir: string): Promise<RunningPart<KubeInfo>> {
  throw new Error(`test env part kube is not implemented yet (dir ${dir})`);
}

import type { RunningPart } from './part.ts';
import type { MinioInfo } from './types.ts';

/** Starts the real minio server on 127.0.0.1 with its state under `dir`. */
export async function startMinio(dir: string): Promise<RunningPart<MinioInfo>> {
  throw new Error(`test env part minio is not implemented yet (dir ${dir})`);
}

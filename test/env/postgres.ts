import type { RunningPart } from './part.ts';
import type { PostgresInfo } from './types.ts';

/** Starts the real postgres server on 127.0.0.1 with its state under `dir`. */
export async function startPostgres(dir: string): Promise<RunningPart<PostgresInfo>> {
  throw new Error(`test env part postgres is not implemented yet (dir ${dir})`);
}

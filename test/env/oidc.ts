import type { RunningPart } from './part.ts';
import type { OidcInfo } from './types.ts';

/** Starts the real oidc server on 127.0.0.1 with its state under `dir`. */
export async function startOidc(dir: string): Promise<RunningPart<OidcInfo>> {
  throw new Error(`test env part oidc is not implemented yet (dir ${dir})`);
}

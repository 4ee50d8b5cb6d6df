// Who launched the workload: the webhook's chaperone.dev/launched-by stamp, handed to the sidecar
// as env CHAPERONE_LAUNCHED_BY through the downward API.

export const LAUNCHER_ENV = 'CHAPERONE_LAUNCHED_BY';

export interface Launcher {
  username: string;
  uid?: string;
  groups?: string[];
  extra?: Record<string, string[]>;
  via?: { kind: string; namespace?: string; name?: string };
  /** A controller created the workload and no launcher was stamped before it. */
  unattributed?: boolean;
}

/** Parses the launcher env; an Error when it is set but not a launcher record. */
export function launcherFromEnv(env: NodeJS.ProcessEnv = process.env): Launcher | Error | undefined {
  const raw = env[LAUNCHER_ENV]?.trim();
  if (!raw) return undefined;
  try {
    const l = JSON.parse(raw) as Launcher;
    if (typeof l?.username !== 'string' || l.username === '') return new Error('launcher has no username');
    return l;
  } catch (err) {
    return err as Error;
  }
}

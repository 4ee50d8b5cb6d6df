// The attribution chain of a session: who launched the workload (the webhook's
// chaperone.dev/launched-by stamp, handed to the sidecar as env CHAPERONE_LAUNCHED_BY through the
// downward API) -> workload -> pod -> service account -> subject of the presented token.
import type { Launcher } from './launcher.ts';
import type { PodIdentity } from './pod.ts';
import { serviceAccountSubject } from './pod.ts';

export interface AttributionChain {
  launcher?: Launcher;
  /** The launcher annotation was present but unreadable (recorded, never silently dropped). */
  launcherError?: string;
  workload?: { kind: string; namespace?: string; name?: string };
  pod?: { namespace?: string; name?: string; uid?: string; node?: string };
  serviceAccount?: string;
  token?: { subject: string; issuer?: string; reviewedAs?: string };
}

export function attributionChain(
  pod: PodIdentity,
  token: { subject: string; issuer?: string; reviewedAs?: string } | undefined,
): AttributionChain {
  const launcher = pod.launcher;
  const sa = serviceAccountSubject(pod);
  return {
    ...(launcher instanceof Error
      ? { launcherError: launcher.message }
      : launcher
        ? { launcher, ...(launcher.via ? { workload: launcher.via } : {}) }
        : {}),
    pod: {
      ...(pod.namespace ? { namespace: pod.namespace } : {}),
      ...(pod.pod ? { name: pod.pod } : {}),
      ...(pod.podUid ? { uid: pod.podUid } : {}),
      ...(pod.node ? { node: pod.node } : {}),
    },
    ...(sa ? { serviceAccount: sa } : {}),
    ...(token ? { token } : {}),
  };
}

/** "alice -> Job/nightly -> pod agent-x -> sa ns/agent -> token sub" for messages and alerts. */
export function describeChain(chain: AttributionChain): string {
  const parts = [
    chain.launcher
      ? `launched by ${chain.launcher.username}${chain.launcher.unattributed ? ' (unattributed controller)' : ''}`
      : 'launcher unknown',
    chain.workload ? `${chain.workload.kind}/${chain.workload.name ?? '?'}` : undefined,
    chain.pod?.name ? `pod ${chain.pod.namespace ?? '?'}/${chain.pod.name}` : undefined,
    chain.serviceAccount ? `service account ${chain.serviceAccount}` : undefined,
    chain.token ? `token subject ${chain.token.subject}` : undefined,
  ];
  return parts.filter((p) => p !== undefined).join(' -> ');
}

/** The session header's attribution fields (recording/events.ts identity.launchedBy/attribution/flags). */
export function identityAttribution(identity: {
  attribution?: AttributionChain | undefined;
  flags?: readonly object[] | undefined;
}): { launchedBy?: string; attribution?: Record<string, unknown>; flags?: Record<string, unknown>[] } {
  const chain = identity.attribution;
  return {
    ...(chain?.launcher ? { launchedBy: chain.launcher.username } : {}),
    ...(chain ? { attribution: JSON.parse(JSON.stringify(chain)) as Record<string, unknown> } : {}),
    ...(identity.flags?.length ? { flags: identity.flags.map((f) => ({ ...f })) } : {}),
  };
}

import { type Launcher, launcherFromEnv } from './launcher.ts';

/** Who the pod is, from the downward API env the webhook sets on the sidecar. */
export interface PodIdentity {
  /** Who launched the workload (webhook stamp chaperone.dev/launched-by); an Error when unreadable. */
  launcher?: Launcher | Error;
  serviceAccount?: string;
  pod?: string;
  namespace?: string;
  node?: string;
  podUid?: string;
}

export const POD_ENV = {
  pod: 'CHAPERONE_POD_NAME',
  namespace: 'CHAPERONE_POD_NAMESPACE',
  podUid: 'CHAPERONE_POD_UID',
  node: 'CHAPERONE_NODE_NAME',
  serviceAccount: 'CHAPERONE_SERVICE_ACCOUNT',
} as const satisfies Record<Exclude<keyof PodIdentity, 'launcher'>, string>;

export function podIdentityFromEnv(env: NodeJS.ProcessEnv = process.env): PodIdentity {
  const identity: PodIdentity = {};
  for (const [field, variable] of Object.entries(POD_ENV) as [keyof typeof POD_ENV, string][]) {
    const value = env[variable]?.trim();
    if (value) identity[field] = value;
  }
  const launcher = launcherFromEnv(env);
  if (launcher) identity.launcher = launcher;
  return identity;
}

/** system:serviceaccount:<namespace>:<name>, the Kubernetes user name of the pod's service account. */
export function serviceAccountSubject(pod: PodIdentity): string | undefined {
  if (!pod.serviceAccount || !pod.namespace) return undefined;
  return `system:serviceaccount:${pod.namespace}:${pod.serviceAccount}`;
}

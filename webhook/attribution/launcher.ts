// Who launched a workload: the admission request's user, stamped as the annotation
// chaperone.dev/launched-by on the pod (or the pod template of a Job, CronJob, Deployment, ReplicaSet,
// StatefulSet, DaemonSet) and carried down by the controllers that copy templates. The value is a
// deterministic function of the request, so the mutating and the validating webhook compute the same
// stamp and the validating webhook can refuse anything else.
import type { UserInfo } from '../admission.ts';

export const LAUNCHED_BY_ANNOTATION = 'chaperone.dev/launched-by';

/**
 * Users that create pods and workloads from templates someone else wrote: for them the stamp already
 * in the template is kept (CronJob -> Job -> Pod, Deployment -> ReplicaSet -> Pod). The controller
 * manager runs as system:kube-controller-manager, or with --use-service-account-credentials as one
 * service account per controller.
 */
export const TEMPLATE_CONTROLLERS: readonly string[] = [
  'system:kube-controller-manager',
  'system:serviceaccount:kube-system:job-controller',
  'system:serviceaccount:kube-system:cronjob-controller',
  'system:serviceaccount:kube-system:replicaset-controller',
  'system:serviceaccount:kube-system:deployment-controller',
  'system:serviceaccount:kube-system:statefulset-controller',
  'system:serviceaccount:kube-system:daemon-set-controller',
];

/** The annotation's content (JSON). */
export interface Launcher {
  /** The Kubernetes user that created or last changed the workload's template. */
  username: string;
  uid?: string;
  groups?: string[];
  /** userInfo.extra: the credential id, or the pod binding of a service-account token. */
  extra?: Record<string, string[]>;
  /** The object whose admission stamped this launcher. */
  via: { kind: string; namespace: string; name?: string };
  /** Set when a controller created the object and its template carried no stamp. */
  unattributed?: true;
}

export interface LauncherRequest {
  userInfo: UserInfo;
  kind: string;
  namespace: string;
  name?: string;
}

function sortedExtra(extra: Record<string, string[]> | undefined): Record<string, string[]> | undefined {
  if (!extra) return undefined;
  const keys = Object.keys(extra).sort();
  if (keys.length === 0) return undefined;
  return Object.fromEntries(keys.map((k) => [k, [...(extra[k] ?? [])]]));
}

export function launcherOf(req: LauncherRequest, unattributed = false): Launcher {
  const u = req.userInfo;
  const extra = sortedExtra(u.extra);
  return {
    username: u.username ?? '',
    ...(u.uid ? { uid: u.uid } : {}),
    ...(u.groups?.length ? { groups: [...u.groups] } : {}),
    ...(extra ? { extra } : {}),
    via: { kind: req.kind, namespace: req.namespace, ...(req.name ? { name: req.name } : {}) },
    ...(unattributed ? { unattributed: true as const } : {}),
  };
}

/** The annotation value: JSON with a fixed key order, so equal stamps are equal strings. */
export function encodeLauncher(launcher: Launcher): string {
  return JSON.stringify(launcher);
}

/** Parses the annotation; undefined when absent, an Error when it is not a launcher. */
export function decodeLauncher(value: string | undefined): Launcher | Error | undefined {
  if (value === undefined) return undefined;
  try {
    const parsed = JSON.parse(value) as Partial<Launcher>;
    if (
      typeof parsed !== 'object' ||
      parsed === null ||
      typeof parsed.username !== 'string' ||
      typeof parsed.via?.kind !== 'string'
    ) {
      return new Error('not a launcher record');
    }
    return parsed as Launcher;
  } catch (error) {
    return error as Error;
  }
}

export function isTemplateController(userInfo: UserInfo, controllers = TEMPLATE_CONTROLLERS): boolean {
  return userInfo.username !== undefined && controllers.includes(userInfo.username);
}

/** One line for messages and tables: "alice via Job/nightly". */
export function describeLauncher(l: Launcher): string {
  return `${l.username}${l.unattributed ? ' (unattributed)' : ''} via ${l.via.kind}/${l.via.name ?? '?'}`;
}

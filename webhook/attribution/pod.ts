// The pod handler's one call into attribution: stamp the launcher on a pod being injected and hand
// it to the sidecar through the downward API (env CHAPERONE_LAUNCHED_BY), or say why the pod is
// refused; and on pod updates, refuse any change of the stamp.
import type { V1Pod } from '@kubernetes/client-node';
import type { AdmissionRequest } from '../admission.ts';
import { CONTAINERS } from '../constants.ts';
import { LAUNCHED_BY_ANNOTATION } from './launcher.ts';
import { applyStamp, stampFor } from './objects.ts';

/** The sidecar env that carries the launcher annotation (read by sidecar/identity/pod.ts). */
export const LAUNCHER_ENV = 'CHAPERONE_LAUNCHED_BY';

/**
 * CREATE: writes the stamp into `mutated` and the env into its chaperone container; returns a refusal
 * message for a forged stamp. UPDATE: returns a refusal when the stamp would change.
 */
export function attributePod(
  req: AdmissionRequest,
  mutated?: V1Pod,
  controllers?: readonly string[],
): string | undefined {
  if (req.operation === 'UPDATE') {
    const stamp = (o: unknown) => (o as V1Pod | undefined)?.metadata?.annotations?.[LAUNCHED_BY_ANNOTATION];
    return stamp(req.object) === stamp(req.oldObject)
      ? undefined
      : `annotation ${LAUNCHED_BY_ANNOTATION} cannot be changed after the pod was created`;
  }
  const decision = stampFor(req, controllers);
  if (!decision) return undefined;
  if (decision.kind === 'deny') return decision.message;
  if (!mutated) return undefined;
  applyStamp(mutated, 'Pod', decision);
  const sidecar = mutated.spec?.initContainers?.find((c) => c.name === CONTAINERS.sidecar);
  if (sidecar) {
    sidecar.env = [
      ...(sidecar.env ?? []).filter((e) => e.name !== LAUNCHER_ENV),
      {
        name: LAUNCHER_ENV,
        valueFrom: {
          fieldRef: { apiVersion: 'v1', fieldPath: `metadata.annotations['${LAUNCHED_BY_ANNOTATION}']` },
        },
      },
    ];
  }
  return undefined;
}

/**
 * The pod as injectPod should see it to recognise (and keep) its own earlier injection: the launcher
 * env is attribution's, appended after injection, so it is taken out of the chaperone container here.
 */
export function withoutLauncherEnv(pod: V1Pod): V1Pod {
  const sidecar = pod.spec?.initContainers?.find((c) => c.name === CONTAINERS.sidecar);
  if (!sidecar?.env?.some((e) => e.name === LAUNCHER_ENV)) return pod;
  // A copy along the path to that env only; the rest is shared with `pod` (read, never written).
  const spec = pod.spec!;
  return {
    ...pod,
    spec: {
      ...spec,
      initContainers: spec.initContainers!.map((c) =>
        c === sidecar ? { ...c, env: c.env!.filter((e) => e.name !== LAUNCHER_ENV) } : c,
      ),
    },
  };
}

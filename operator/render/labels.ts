// Names and labels the operator stamps on what it owns, shared by rendering, pruning and the webhook
// (which mounts the ConfigMap by name, through crds/).
import { policyConfigMapName, sshHostKeySecretName, sshKnownHostsName } from '../../crds/index.ts';

export const FIELD_MANAGER = 'chaperone-operator';

export const LABELS = {
  managedBy: 'app.kubernetes.io/managed-by',
  partOf: 'app.kubernetes.io/part-of',
  policy: 'chaperone.dev/policy',
} as const;

export const MANAGED_BY_VALUE = 'chaperone-operator';
export const PART_OF_VALUE = 'chaperone';

/** Selects every child object the operator created (ConfigMaps and NetworkPolicies). */
export const CHILD_SELECTOR = `${LABELS.managedBy}=${MANAGED_BY_VALUE}`;

/** Name of the ConfigMap and of the NetworkPolicy rendered for a SessionPolicy. */
export const childName = policyConfigMapName;
export { sshHostKeySecretName, sshKnownHostsName };

export function childLabels(policyName: string): Record<string, string> {
  return {
    [LABELS.managedBy]: MANAGED_BY_VALUE,
    [LABELS.partOf]: PART_OF_VALUE,
    [LABELS.policy]: policyName,
  };
}

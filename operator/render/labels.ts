// Names and labels the operator stamps on what it owns, shared by rendering, pruning and the webhook
// (which mounts the ConfigMap by name).

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
export function childName(policyName: string): string {
  return `chaperone-policy-${policyName}`;
}

/** The per-policy Secret holding the sidecar's SSH host key (created once, never overwritten). */
export function sshHostKeySecretName(policyName: string): string {
  return `chaperone-ssh-host-key-${policyName}`;
}

/** The per-policy ConfigMap agents mount: known_hosts lines for the sidecar's ssh listeners. */
export function sshKnownHostsName(policyName: string): string {
  return `chaperone-ssh-known-hosts-${policyName}`;
}

export function childLabels(policyName: string): Record<string, string> {
  return {
    [LABELS.managedBy]: MANAGED_BY_VALUE,
    [LABELS.partOf]: PART_OF_VALUE,
    [LABELS.policy]: policyName,
  };
}

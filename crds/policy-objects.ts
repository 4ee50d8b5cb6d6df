// The names of the objects a SessionPolicy stands for in its namespace: the operator creates them,
// the webhook mounts them into injected pods. One definition, so the two can never disagree.

/** The ConfigMap (the sidecar's configuration) and the NetworkPolicy rendered for a SessionPolicy. */
export function policyConfigMapName(policyName: string): string {
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

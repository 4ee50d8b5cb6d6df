// Mount points the rendered config refers to that sidecar/config's SIDECAR_PATHS does not (yet) name.
// The webhook must mount the matching Secrets there; see operator/README.md.

/** Upstream CA bundle of a target (tls.caSecret), Secret `chaperone-ca-<target>` in the sidecar only. */
export function upstreamCaDir(target: string): string {
  return `/var/run/chaperone/upstream-ca/${target}`;
}

/** Alert webhook URL from alerts.webhookUrlSecret, sidecar only. */
export const ALERTS_SECRET_DIR = '/var/run/chaperone/alerts';

/** The in-cluster CA that every container with a service-account token sees. */
export const IN_CLUSTER_CA_FILE = '/var/run/secrets/kubernetes.io/serviceaccount/ca.crt';

// Names shared by the webhook, the operator and the chart (see docs: control-plane conventions).

export const LABELS = {
  /** Namespace label that opts a namespace in. */
  recording: 'chaperone.dev/recording',
  /** Pod label that opts a pod out; honoured only where the namespace allows opt-out. */
  inject: 'chaperone.dev/inject',
  /** Namespace label `true`: pods may opt out with chaperone.dev/inject=false. */
  allowOptOut: 'chaperone.dev/allow-opt-out',
  /** Namespace label `allow`: pods that match no SessionPolicy are admitted untouched. */
  unmatched: 'chaperone.dev/unmatched',
  partOf: 'app.kubernetes.io/part-of',
} as const;

export const ANNOTATIONS = {
  /** JSON of what was injected (informational: every admission strips and re-injects). */
  status: 'chaperone.dev/status',
  policy: 'chaperone.dev/policy',
  /**
   * Hash of the rendering config the mutating call used (webhook/rendering.ts). Only read by our own
   * validating call during a rollout; every mutating call overwrites it, so a pod author cannot pick.
   */
  renderedWith: 'chaperone.dev/rendered-with',
} as const;

/** The rendering configs live replicas use, one ConfigMap per hash in the system namespace. */
export const RENDERER_REGISTRY = {
  namePrefix: 'chaperone-renderer-',
  /** Label selecting every registry ConfigMap (for pruning). */
  label: { key: 'chaperone.dev/renderer', value: 'true' },
  /** Annotation: ISO time a live replica last said it renders with this config. */
  seenAnnotation: 'chaperone.dev/renderer-last-seen',
  dataKey: 'rendering.json',
} as const;

export const CONTAINERS = { init: 'chaperone-init', sidecar: 'chaperone' } as const;

export const VOLUMES = {
  config: 'chaperone-config',
  spool: 'chaperone-spool',
  agentToken: 'chaperone-token',
  /** kubernetes targets: the kubeconfig the sidecar writes, read-only in agent containers. */
  agentKube: 'chaperone-kube',
  sidecarToken: 'chaperone-sa-token',
  signingKey: 'chaperone-signing-key',
  storeCredentials: 'chaperone-store-credentials',
  alerts: 'chaperone-alerts',
  credentialsPrefix: 'chaperone-cred-',
  tlsPrefix: 'chaperone-tls-',
  introspectionPrefix: 'chaperone-introspect-',
  /** ssh targets: the sidecar's host key (sidecar only) and the agents' known_hosts. */
  sshHostKey: 'chaperone-ssh-host-key',
  sshKnownHosts: 'chaperone-ssh-known-hosts',
} as const;

/** Every volume name the webhook owns starts with this; agents may not mount them (except the token). */
export const RESERVED_VOLUME_PREFIX = 'chaperone-';

export const PATHS = {
  agentTokenDir: '/var/run/chaperone/agent-token',
  agentTokenFile: '/var/run/chaperone/agent-token/token',
  configDir: '/etc/chaperone/config',
  sidecarTokenDir: '/var/run/chaperone/token',
  signingKeyDir: '/var/run/chaperone/signing-key',
  /** Not (yet) in SIDECAR_PATHS: where a target's tls.caSecret key is mounted, as ca.crt. */
  tlsDir: (target: string) => `/var/run/chaperone/tls/${target}`,
  /** Not (yet) in SIDECAR_PATHS: alerts.webhookUrlSecret mounted as file webhookUrl. */
  alertsDir: '/var/run/chaperone/alerts',
  /** ssh targets: where agents find known_hosts for the sidecar (also $CHAPERONE_SSH_KNOWN_HOSTS). */
  sshKnownHostsDir: '/etc/chaperone/ssh',
  sshKnownHostsFile: '/etc/chaperone/ssh/known_hosts',
  /** Read by OpenSSH clients by default (GlobalKnownHostsFile): ssh works with no option at all. */
  sshGlobalKnownHosts2: '/etc/ssh/ssh_known_hosts2',
} as const;

export const AGENT_TOKEN_AUDIENCE = 'chaperone';

export const WEBHOOK_PATHS = {
  mutatePods: '/mutate/pods',
  validatePods: '/validate/pods',
  validateSessionPolicies: '/validate/sessionpolicies',
  mutateSessionApprovals: '/mutate/sessionapprovals',
  validateSessionApprovals: '/validate/sessionapprovals',
  /** Attribution: the launcher stamp on workload pod templates (webhook/attribution/). */
  mutateWorkloads: '/mutate/workloads',
  validateWorkloads: '/validate/workloads',
  validateOperatorChildren: '/validate/operator-children',
} as const;

/** The label the operator stamps on what it renders (operator/render/labels.ts). */
export const OPERATOR_CHILD_LABEL = {
  key: 'app.kubernetes.io/managed-by',
  value: 'chaperone-operator',
} as const;

export const TLS_SECRET_NAME = 'chaperone-webhook-tls';

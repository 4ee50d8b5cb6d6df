// Configuration of the webhook process (file or env, validated here): what it injects and how it serves.
import { isIP } from 'node:net';
import { z } from 'zod';
import { TLS_SECRET_NAME } from './constants.ts';

const quantitySchema = z
  .string()
  .regex(/^[0-9.]+[a-zA-Z]*$/, 'must be a Kubernetes quantity such as 100m or 128Mi');
const resourceListSchema = z.partialRecord(z.enum(['cpu', 'memory', 'ephemeral-storage']), quantitySchema);
export const resourcesSchema = z.object({
  requests: resourceListSchema.optional(),
  limits: resourceListSchema.optional(),
});
export type Resources = z.infer<typeof resourcesSchema>;

const idSchema = z.number().int().min(1).max(2147483647);

export const tlsSourceSchema = z
  .discriminatedUnion('source', [
    z.object({
      source: z.literal('secret'),
      /** Default: the system namespace. */
      namespace: z.string().optional(),
      name: z.string().default(TLS_SECRET_NAME),
    }),
    z.object({
      source: z.literal('files'),
      certFile: z.string().min(1),
      keyFile: z.string().min(1),
      /** How often the files are checked for a new certificate (cert-manager rotates them in place). */
      pollSeconds: z.number().int().min(1).default(10),
    }),
  ])
  .describe('Where the serving certificate comes from; both are swapped live without a restart.');
export type TlsSource = z.infer<typeof tlsSourceSchema>;

export const webhookConfigSchema = z.object({
  sidecarImage: z.string().min(1),
  /** Image of chaperone-init: node + iptables. Default: the sidecar image. */
  initImage: z.string().min(1).optional(),
  initCommand: z.array(z.string().min(1)).min(1).default(['chaperone-init']),
  imagePullPolicy: z.enum(['Always', 'IfNotPresent', 'Never']).optional(),
  sidecarUid: idSchema.default(15999),
  sidecarGid: idSchema.default(15999),
  /** Must equal the sidecar config's adminPort (the operator renders the sidecar default, 15090). */
  adminPort: z.number().int().min(1).max(65535).default(15090),
  resources: z
    .object({
      sidecar: resourcesSchema.default({
        requests: { cpu: '50m', memory: '64Mi' },
        limits: { memory: '512Mi' },
      }),
      init: resourcesSchema.default({ requests: { cpu: '10m', memory: '16Mi' }, limits: { memory: '64Mi' } }),
    })
    .prefault({}),
  spoolSizeLimit: quantitySchema.default('1Gi'),
  systemNamespace: z.string().min(1).default('chaperone-system'),
  listen: z
    .object({
      host: z.string().default('0.0.0.0'),
      port: z.number().int().min(0).max(65535).default(9443).describe('0: any free port'),
    })
    .prefault({}),
  tls: tlsSourceSchema.default({ source: 'secret', name: TLS_SECRET_NAME }),
  dns: z
    .object({
      /**
       * Resolver addresses agents may send DNS to (UDP/TCP 53), added to what discoverService finds.
       * None at all: injected pods are refused ([dns-resolver]) rather than given port 53 to any
       * address, which would be a tunnel out of the pod.
       */
      resolvers: z.array(z.string().refine((s) => isIP(s) !== 0, 'must be an IP address')).default([]),
      /** namespace/name of the cluster DNS Service whose clusterIPs are added to resolvers at startup. */
      discoverService: z.string().nullable().default('kube-system/kube-dns'),
    })
    .prefault({}),
  /**
   * Admission cannot see an image's default user. true: agent containers must set runAsUser (pod or
   * container level) so the webhook can check it is not the sidecar UID. false: trust images, which
   * lets an image whose USER is the sidecar UID:GID bypass capture.
   */
  requireAgentRunAsUser: z.boolean().default(true),
  /**
   * Groups whose members may still exec/attach into chaperone's containers and port-forward into
   * injected pods (break-glass). Each use is allowed with a warning, logged by the webhook and
   * annotated in the apiserver's audit event. Empty: nobody.
   */
  breakGlassGroups: z.array(z.string().min(1)).default([]),
  /**
   * Users who may write the operator's ConfigMaps and NetworkPolicies in opted-in namespaces.
   * Empty: the operator's service account, system:serviceaccount:<systemNamespace>:chaperone-operator.
   */
  operatorUsers: z.array(z.string().min(1)).default([]),
  /**
   * Serve admissions from watched Namespaces and SessionPolicies (no API call per pod); skips and
   * refusals are always confirmed live. false: read the API on every request.
   */
  informerCache: z.boolean().default(true),
  /**
   * Attribution: users whose pod and workload creations copy a template someone else wrote, so the
   * template's launcher stamp is kept. Default: the built-in controllers (webhook/attribution).
   */
  templateControllers: z.array(z.string().min(1)).optional(),
  /** Kubeconfig file; absent: in-cluster config or $KUBECONFIG. */
  kubeconfig: z.string().optional(),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace']).default('info'),
});
export type WebhookConfig = z.infer<typeof webhookConfigSchema>;
export type WebhookConfigInput = z.input<typeof webhookConfigSchema>;

/** Parses config, naming every wrong field in one error. */
export function parseWebhookConfig(input: unknown): WebhookConfig {
  const result = webhookConfigSchema.safeParse(input);
  if (!result.success) {
    throw new Error(`invalid webhook config:\n${z.prettifyError(result.error)}`);
  }
  return result.data;
}

// The operator's own configuration: one zod schema, read from a YAML/JSON file (--config) with
// defaults for everything, so `node operator/main.ts` runs in a cluster with no file at all.
import { z } from 'zod';

const seconds = z.number().positive();

export const operatorConfigSchema = z
  .object({
    systemNamespace: z
      .string()
      .min(1)
      .default('chaperone-system')
      .describe('Namespace of the operator, the webhook, their Lease and the webhook TLS Secrets.'),
    identity: z
      .string()
      .min(1)
      .optional()
      .describe('This instance in the Lease (default: POD_NAME or hostname plus a random suffix).'),
    watchNamespace: z
      .string()
      .min(1)
      .optional()
      .describe('Reconcile SessionPolicies of this namespace only (default: all namespaces).'),
    resyncSeconds: seconds.default(600).describe('Every policy is reconciled at least this often.'),
    notReadyRequeueSeconds: seconds
      .default(30)
      .describe('A policy refused for a missing Secret or store problem is checked again after this.'),
    concurrency: z.number().int().min(1).max(32).default(2),
    leaderElection: z
      .object({
        enabled: z.boolean().default(true),
        leaseName: z.string().min(1).default('chaperone-operator'),
        leaseDurationSeconds: z.number().int().min(1).default(15),
        renewDeadlineSeconds: seconds.default(10),
        retryPeriodSeconds: seconds.default(2),
      })
      .prefault({})
      .refine((le) => le.renewDeadlineSeconds < le.leaseDurationSeconds, {
        message: 'renewDeadlineSeconds must be shorter than leaseDurationSeconds',
      })
      .refine((le) => le.retryPeriodSeconds < le.renewDeadlineSeconds, {
        message: 'retryPeriodSeconds must be shorter than renewDeadlineSeconds',
      }),
    certificates: z
      .object({
        mode: z
          .enum(['operator', 'certManager'])
          .default('operator')
          .describe(
            'operator: this operator keeps the webhook CA, serving cert and caBundle. certManager: cert-manager does (Certificate + cainjector); the operator leaves them alone.',
          ),
        secretName: z.string().default('chaperone-webhook-tls'),
        caSecretName: z.string().default('chaperone-webhook-ca').describe('Holds the CA key; never mounted.'),
        serviceName: z.string().default('chaperone-webhook'),
        localUrl: z
          .boolean()
          .default(false)
          .describe('Local URL mode (webhook as a local process): add 127.0.0.1, ::1 and localhost SANs.'),
        extraDnsNames: z.array(z.string().min(1)).default([]),
        extraIpAddresses: z.array(z.string().min(1)).default([]),
        caLifetimeSeconds: seconds.default(5 * 365 * 86400),
        servingLifetimeSeconds: seconds.default(365 * 86400),
        renewAtFraction: z
          .number()
          .gt(0)
          .lt(1)
          .default(2 / 3)
          .describe('Renew a certificate once this fraction of its lifetime has passed.'),
        webhookSelector: z.string().default('app.kubernetes.io/part-of=chaperone'),
      })
      .prefault({}),
    sidecar: z
      .object({
        approvalsBackend: z.enum(['none', 'local', 'kubernetes']).default('kubernetes'),
        adminPort: z.number().int().min(1).max(65535).default(15090),
        kubernetesCaFile: z.string().optional(),
      })
      .prefault({}),
    networkPolicy: z
      .object({
        enabled: z.boolean().default(true),
        dns: z
          .object({ namespace: z.string(), podLabels: z.record(z.string(), z.string()) })
          .default({ namespace: 'kube-system', podLabels: { 'k8s-app': 'kube-dns' } }),
        apiServer: z
          .array(z.object({ host: z.string().optional(), port: z.number().int().min(1).max(65535) }))
          .optional()
          .describe('How pods reach the apiserver after Service DNAT (default: ports 443 and 6443).'),
        clusterCidrs: z
          .array(z.string().regex(/^[0-9a-fA-F:.]+\/\d{1,3}$/, 'must be a CIDR'))
          .optional()
          .describe(
            "The cluster's pod and Service CIDRs: host-name targets are then narrowed to them (cluster names) or to everything else (other names).",
          ),
      })
      .prefault({}),
    storage: z
      .object({
        bootstrap: z.boolean().default(true).describe('Create buckets and lifecycle rules for s3:// stores.'),
        checkSeconds: seconds.default(600).describe('How often an unchanged store is checked again.'),
      })
      .prefault({}),
    server: z
      .object({ host: z.string().default('0.0.0.0'), port: z.number().int().min(0).max(65535).default(8080) })
      .prefault({})
      .describe('/healthz, /readyz and /metrics (port 0: any free port).'),
    logLevel: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
  })
  .describe('Configuration of the chaperone operator.');

export type OperatorConfig = z.infer<typeof operatorConfigSchema>;
export type OperatorConfigInput = z.input<typeof operatorConfigSchema>;

export function parseOperatorConfig(input: unknown): OperatorConfig {
  const parsed = operatorConfigSchema.safeParse(input ?? {});
  if (!parsed.success) {
    throw new Error(
      `invalid operator config: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`,
    );
  }
  return parsed.data;
}

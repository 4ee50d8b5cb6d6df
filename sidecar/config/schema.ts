// The sidecar's configuration: what the operator renders into a ConfigMap (and what a user writes
// by hand for standalone use). Policy rules come straight from the SessionPolicy schema; Secret
// references become paths of the files the webhook mounts into the sidecar.
import { z } from 'zod';
import {
  alertsSchema,
  approvalsSchema,
  guardrailSchema,
  identitySchema,
  issuerSchema,
  maskingSchema,
  recordingSchema,
  sshTargetSchema,
  targetSchema,
} from '../../crds/index.ts';

/** Where the webhook mounts things into the sidecar; the operator renders config with these paths. */
export const SIDECAR_PATHS = {
  configFile: '/etc/chaperone/config/config.json',
  credentialsDir: (target: string) => `/var/run/chaperone/credentials/${target}`,
  signingKeyFile: '/var/run/chaperone/signing-key/privateKey',
  storeCredentialsDir: '/var/run/chaperone/store-credentials',
  serviceAccountTokenFile: '/var/run/chaperone/token/token',
  spoolDir: '/var/run/chaperone/spool',
  /** An issuer's introspection client secret (Secret `name`), one file per key. */
  introspectionDir: (secret: string) => `/var/run/chaperone/introspection/${secret}`,
  /** The sidecar's own SSH host key (Secret the operator creates per policy), key privateKey. */
  sshHostKeyFile: '/var/run/chaperone/ssh-host-key/privateKey',
  /** kubernetes targets: the agent kubeconfig the sidecar writes (a volume agents mount read-only). */
  agentKubeDir: '/var/run/chaperone/kube',
  agentKubeconfigFile: (target: string) => `/var/run/chaperone/kube/${target}.kubeconfig`,
  /** The agent's projected token as agent containers see it (webhook/constants.ts PATHS). */
  agentTokenFile: '/var/run/chaperone/agent-token/token',
} as const;

const sidecarTargetSchema = targetSchema.omit({ credentialsSecret: true, tls: true }).extend({
  agentKubeconfig: z
    .object({
      file: z
        .string()
        .describe('Where the sidecar writes the kubeconfig agents use (a volume they mount read-only).'),
      tokenFile: z.string().describe("The agent's token file as agent containers see it."),
      namespace: z.string().optional(),
    })
    .optional()
    .describe(
      'kubernetes targets: the agent kubeconfig the sidecar writes at start (its serving CA inside).',
    ),
  credentialsDir: z
    .string()
    .optional()
    .describe('Directory holding the upstream credentials as files (username, password, privateKey, token).'),
  tls: z
    .object({
      mode: z.enum(['disable', 'require', 'verify-full']).optional(),
      caFile: z.string().optional(),
      serverName: z.string().optional(),
      allowUnverifiedPassword: z.boolean().default(false),
    })
    .prefault({})
    // A named CA means the policy expects a verified upstream: verify-full unless it says otherwise.
    .transform((tls) => ({ ...tls, mode: tls.mode ?? (tls.caFile ? 'verify-full' : 'disable') })),
  ssh: sshTargetSchema
    .extend({
      hostKeyFile: z
        .string()
        .default(SIDECAR_PATHS.sshHostKeyFile)
        .describe("The sidecar's own host key (OpenSSH private key) that agents see."),
    })
    .optional(),
});
export type SidecarTarget = z.infer<typeof sidecarTargetSchema>;

const sidecarIssuerSchema = issuerSchema
  .extend({
    caFile: z
      .string()
      .optional()
      .describe('CA bundle for the issuer over HTTPS (the in-cluster CA for kubernetes issuers).'),
    introspection: z
      .object({ endpoint: z.url().optional(), clientId: z.string().min(1), clientSecretFile: z.string() })
      .optional(),
  })
  .check((ctx) => {
    // Attribution and identity liveness: keys and revocation answers only over TLS (or loopback).
    const { issuer, jwksUri, introspection } = ctx.value;
    for (const [field, url] of [
      ['issuer', issuer],
      ['jwksUri', jwksUri],
      ['introspection.endpoint', introspection?.endpoint],
    ] as const) {
      if (url !== undefined && !secureUrl(url))
        ctx.issues.push({
          code: 'custom',
          input: url,
          path: field.split('.'),
          message: `${field} must be https (http only on loopback)`,
        });
    }
  });

/** https, or http to a loopback address (a test provider, a node-local agent). */
export function secureUrl(url: string): boolean {
  try {
    const u = new URL(url);
    if (u.protocol === 'https:') return true;
    return u.protocol === 'http:' && ['127.0.0.1', 'localhost', '[::1]'].includes(u.hostname);
  } catch {
    return false;
  }
}

export const sidecarConfigSchema = z
  .object({
    apiVersion: z.literal('chaperone.dev/sidecar-v1'),
    policy: z
      .object({ name: z.string(), namespace: z.string().optional(), generation: z.number().int().optional() })
      .describe('The SessionPolicy this config was rendered from (recorded in every session header).'),
    listenHost: z.string().default('127.0.0.1'),
    adminPort: z.number().int().min(1).max(65535).default(15090).describe('/healthz, /readyz and /metrics.'),
    shutdownGraceSeconds: z.number().int().min(0).default(20),
    targets: z.array(sidecarTargetSchema).min(1),
    identity: identitySchema
      .extend({
        issuers: z.array(sidecarIssuerSchema).default([]),
        offboarding: identitySchema.shape.offboarding
          .unwrap()
          .extend({ file: z.string().optional().describe('A local file holding the list (standalone use).') })
          .optional(),
      })
      .prefault({}),
    guardrails: z.array(guardrailSchema).default([]),
    masking: maskingSchema.prefault({}),
    approvals: approvalsSchema
      .extend({
        backend: z
          .enum(['none', 'local', 'kubernetes'])
          .default('none')
          .describe(
            'none: requireApproval rules deny; local: decisions as files in localDir; kubernetes: SessionApproval objects.',
          ),
        localDir: z.string().optional(),
      })
      .prefault({}),
    alerts: alertsSchema
      .omit({ webhookUrlSecret: true })
      .extend({ webhookUrlFile: z.string().optional() })
      .optional(),
    recording: recordingSchema.omit({ signingKeySecret: true, store: true }).extend({
      store: recordingSchema.shape.store.omit({ credentialsSecret: true }).extend({
        credentialsDir: z.string().optional().describe('Files accessKeyId and secretAccessKey.'),
      }),
      signingKeyFile: z.string(),
      keyId: z.string().optional(),
      spoolDir: z.string(),
    }),
  })
  .describe('Configuration of one chaperone sidecar.');
export type SidecarConfig = z.infer<typeof sidecarConfigSchema>;
export type SidecarConfigInput = z.input<typeof sidecarConfigSchema>;

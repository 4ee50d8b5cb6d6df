// The Helm chart's values as one zod schema. charts/schema/generate.ts renders it to
// charts/chaperone/values.schema.json (helm refuses values that fail it) and to the values reference
// in docs/install.md; charts/chaperone.test.ts fails when either drifts or values.yaml fails it.
import { z } from 'zod';

const quantity = z.string().regex(/^[0-9.]+[a-zA-Z]*$/, 'a Kubernetes quantity such as 100m or 128Mi');
const resourceList = z.strictObject({
  cpu: quantity.optional(),
  memory: quantity.optional(),
  'ephemeral-storage': quantity.optional(),
});
const resources = z
  .strictObject({ requests: resourceList.optional(), limits: resourceList.optional() })
  .describe('Container resources (requests and limits).');
const digest = z
  .string()
  .regex(/^(sha256:[0-9a-f]{64})?$/, 'empty or sha256:<64 hex>')
  .describe('Image digest (sha256:...). When set the image is pulled by digest and the tag is ignored.');
const labels = z.record(z.string(), z.string());
const port = z.number().int().min(1).max(65535);
const loose = z.record(z.string(), z.unknown());

const scheduling = {
  nodeSelector: labels.optional().describe('Node labels the pods must match.'),
  tolerations: z.array(loose).optional().describe('Pod tolerations.'),
  affinity: loose.optional().describe('Pod affinity, besides the topology spread the chart always sets.'),
  priorityClassName: z.string().optional().describe('PriorityClass of the pods.'),
};

const leaderElection = z
  .strictObject({
    leaseDurationSeconds: z.number().int().min(1).default(15).describe('A standby takes over after this.'),
    renewDeadlineSeconds: z
      .number()
      .int()
      .min(1)
      .default(10)
      .describe('A leader that cannot renew for this long stops its controllers.'),
    retryPeriodSeconds: z.number().int().min(1).default(2).describe('The Lease is renewed this often.'),
  })
  .describe('Lease timings: a standby takes over after leaseDurationSeconds without a renewal.');

export const valuesSchema = z
  .strictObject({
    global: loose.optional().describe('Helm global values (unused by this chart).'),
    nameOverride: z.string().optional().describe('Unused; object names are fixed (chaperone-operator, ...).'),
    image: z
      .strictObject({
        registry: z
          .string()
          .default('chaperone')
          .describe('Registry and path prefix: <registry>/<component>, e.g. registry.example.com/chaperone.'),
        tag: z.string().default('').describe('Image tag; empty: the chart appVersion.'),
        pullPolicy: z
          .enum(['Always', 'IfNotPresent', 'Never'])
          .default('IfNotPresent')
          .describe('imagePullPolicy of every Chaperone container, injected ones included.'),
        digests: z
          .strictObject({
            operator: digest.default(''),
            webhook: digest.default(''),
            sidecar: digest.default(''),
            init: digest.default(''),
            cli: digest.default('').describe('The image of the `helm test` pod.'),
          })
          .prefault({})
          .describe('Per-image digests; set them in production so a tag move changes nothing.'),
      })
      .prefault({}),
    imagePullSecrets: z
      .array(z.strictObject({ name: z.string().min(1) }))
      .default([])
      .describe('Pull secrets for the operator and webhook pods.'),
    crds: z
      .strictObject({
        install: z
          .boolean()
          .default(true)
          .describe('Render the CRDs as templates (installed and upgraded with the release).'),
        keep: z
          .boolean()
          .default(true)
          .describe('helm.sh/resource-policy: keep on the CRDs, so uninstall never deletes policies.'),
      })
      .prefault({}),
    operator: z
      .strictObject({
        replicas: z.number().int().min(1).default(2).describe('One leader, the rest standbys.'),
        resources: resources.default({
          requests: { cpu: '50m', memory: '128Mi' },
          limits: { memory: '512Mi' },
        }),
        logLevel: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
        watchNamespace: z
          .string()
          .default('')
          .describe('Reconcile SessionPolicies of this namespace only; empty: all namespaces.'),
        leaderElection: leaderElection.prefault({}),
        serviceAccount: z
          .strictObject({
            annotations: labels
              .default({})
              .describe(
                'ServiceAccount annotations: eks.amazonaws.com/role-arn (IRSA) or iam.gke.io/gcp-service-account (GKE).',
              ),
          })
          .prefault({}),
        extraConfig: loose
          .default({})
          .describe('Further operator config (operator/config.ts), merged over what the chart sets.'),
        ...scheduling,
      })
      .prefault({}),
    webhook: z
      .strictObject({
        replicas: z
          .number()
          .int()
          .min(2)
          .default(3)
          .describe('At least 2: the PodDisruptionBudget keeps one.'),
        resources: resources.default({
          requests: { cpu: '100m', memory: '128Mi' },
          limits: { memory: '512Mi' },
        }),
        logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace']).default('info'),
        timeoutSeconds: z
          .number()
          .int()
          .min(1)
          .max(30)
          .default(10)
          .describe('Admission timeout; failurePolicy is Fail.'),
        pdb: z
          .strictObject({
            minAvailable: z
              .number()
              .int()
              .min(1)
              .default(1)
              .describe('Webhook replicas kept through voluntary disruptions.'),
          })
          .prefault({})
          .describe('PodDisruptionBudget of the webhook.'),
        breakGlassGroups: z
          .array(z.string().min(1))
          .default([])
          .describe("Groups that may exec/attach into chaperone's containers (warned, audited)."),
        operatorUsers: z
          .array(z.string().min(1))
          .default([])
          .describe(
            "Users that may write the operator's children; empty: the chart's operator ServiceAccount.",
          ),
        dnsResolvers: z
          .array(z.string().min(1))
          .default([])
          .describe('DNS resolver IPs agents may use, besides the cluster DNS Service.'),
        dnsService: z
          .string()
          .default('kube-system/kube-dns')
          .describe(
            'namespace/name of the cluster DNS Service (its clusterIPs are allowed); empty: none, only dnsResolvers.',
          ),
        requireAgentRunAsUser: z
          .boolean()
          .default(true)
          .describe(
            'Agent containers must set runAsUser, so the webhook can tell them from the sidecar UID.',
          ),
        extraConfig: loose
          .default({})
          .describe(
            'Further webhook config (webhook/config.ts), merged over what the chart sets; e.g. templateControllers.',
          ),
        ...scheduling,
      })
      .prefault({}),
    sidecar: z
      .strictObject({
        resources: resources.default({
          requests: { cpu: '50m', memory: '64Mi' },
          limits: { memory: '512Mi' },
        }),
        initResources: resources.default({
          requests: { cpu: '10m', memory: '16Mi' },
          limits: { memory: '64Mi' },
        }),
      })
      .prefault({})
      .describe('Containers the webhook injects into agent pods.'),
    certificates: z
      .strictObject({
        mode: z
          .enum(['operator', 'certManager'])
          .default('operator')
          .describe(
            "operator: the operator's own CA signs the webhook certificate and fills caBundle. certManager: cert-manager does.",
          ),
        certManager: z
          .strictObject({
            issuerRef: z
              .strictObject({
                name: z
                  .string()
                  .default('')
                  .describe('Issuer name; empty: a self-signed CA made by the chart.'),
                kind: z.enum(['Issuer', 'ClusterIssuer']).default('Issuer'),
                group: z.string().default('cert-manager.io'),
              })
              .prefault({})
              .describe('Issuer of the serving certificate; empty name: the chart creates a self-signed CA.'),
          })
          .prefault({}),
      })
      .prefault({}),
    storage: z
      .strictObject({
        region: z.string().default('').describe('AWS_REGION of the operator (S3 bucket bootstrap).'),
        credentials: z
          .strictObject({
            existingSecret: z
              .string()
              .default('')
              .describe(
                'Secret with the operator S3 keys; empty: the SDK default chain (IRSA, workload identity).',
              ),
            accessKeyIdKey: z
              .string()
              .default('accessKeyId')
              .describe('Key of the access key id in existingSecret.'),
            secretAccessKeyKey: z
              .string()
              .default('secretAccessKey')
              .describe('Key of the secret access key in existingSecret.'),
          })
          .prefault({}),
      })
      .prefault({}),
    signingKey: z
      .strictObject({
        generate: z
          .boolean()
          .default(false)
          .describe(
            'Generate one Ed25519 signing key at install and keep it (never regenerated on upgrade).',
          ),
        secretName: z
          .string()
          .min(1)
          .default('chaperone-signing-key')
          .describe(
            'Name of the generated Secret (key privateKey), in the release namespace and each of namespaces.',
          ),
        namespaces: z
          .array(z.string().min(1))
          .default([])
          .describe(
            'Agent namespaces that get a copy of the generated key Secret (a policy reads it there).',
          ),
      })
      .prefault({}),
    networkPolicy: z
      .strictObject({
        enabled: z.boolean().default(true).describe("NetworkPolicies for Chaperone's own pods."),
        apiServerPorts: z
          .array(port)
          .default([443, 6443])
          .describe('Ports the apiserver is reached on after Service DNAT.'),
        apiServerCidrs: z
          .array(z.string().min(1))
          .default([])
          .describe('Apiserver addresses (CIDRs) to narrow egress to; empty: any address on those ports.'),
        storagePorts: z
          .array(port)
          .default([443])
          .describe('Ports the operator reaches the S3 store on (bucket bootstrap).'),
        metricsFrom: z
          .array(loose)
          .default([])
          .describe(
            "NetworkPolicy peers allowed to scrape the operator's /metrics (8080); empty: nobody. The webhook's 9443 is open to any source (the apiserver's address varies).",
          ),
      })
      .prefault({}),
    indexer: z
      .strictObject({
        enabled: z
          .boolean()
          .default(false)
          .describe('A CronJob running `chaperone index build` (the search index, docs/auditing.md).'),
        schedule: z.string().min(1).default('*/15 * * * *').describe('Cron schedule of the index build.'),
        store: z
          .strictObject({
            url: z
              .string()
              .regex(/^(s3:\/\/[^/]+.*)?$/, 'empty or s3://bucket/prefix')
              .default('')
              .describe(
                'The store to index: recording.store.url of the SessionPolicies (s3://bucket/prefix). Required when enabled.',
              ),
            endpoint: z
              .string()
              .default('')
              .describe('S3 endpoint for S3-compatible stores (recording.store.endpoint); empty: AWS.'),
            region: z.string().default('').describe('AWS_REGION; empty: storage.region, else us-east-1.'),
            credentials: z
              .strictObject({
                existingSecret: z
                  .string()
                  .default('')
                  .describe(
                    'Secret in the release namespace with S3 keys that may read index/ and write parquet/; empty: the SDK default chain.',
                  ),
                accessKeyIdKey: z.string().default('accessKeyId').describe('Key of the access key id.'),
                secretAccessKeyKey: z
                  .string()
                  .default('secretAccessKey')
                  .describe('Key of the secret access key.'),
              })
              .prefault({}),
          })
          .prefault({}),
        serviceAccount: z
          .strictObject({
            annotations: labels
              .default({})
              .describe('Annotations of the indexer ServiceAccount (IRSA role, GKE workload identity).'),
          })
          .prefault({}),
        resources: resources.default({
          requests: { cpu: '50m', memory: '256Mi' },
          limits: { memory: '1Gi' },
        }),
        activeDeadlineSeconds: z
          .number()
          .int()
          .min(60)
          .default(3600)
          .describe('A run taking longer is stopped (the next one resumes: the build is idempotent).'),
        successfulJobsHistoryLimit: z.number().int().min(0).default(1).describe('Finished Jobs kept.'),
        failedJobsHistoryLimit: z.number().int().min(0).default(3).describe('Failed Jobs kept.'),
        nodeSelector: scheduling.nodeSelector,
        tolerations: scheduling.tolerations,
      })
      .prefault({})
      .describe('Scheduled builds of the auditor search index (Parquet under parquet/ of the store).'),
    helmTest: z
      .strictObject({
        nodeSelector: scheduling.nodeSelector,
        tolerations: scheduling.tolerations,
      })
      .prefault({})
      .describe('Scheduling of the `helm test` pod (tainted nodes).'),
    podSecurityContext: loose
      .default({
        runAsNonRoot: true,
        runAsUser: 65532,
        runAsGroup: 65532,
        fsGroup: 65532,
        seccompProfile: { type: 'RuntimeDefault' },
      })
      .describe('Pod securityContext of the operator and webhook.'),
    containerSecurityContext: loose
      .default({
        allowPrivilegeEscalation: false,
        readOnlyRootFilesystem: true,
        capabilities: { drop: ['ALL'] },
        seccompProfile: { type: 'RuntimeDefault' },
      })
      .describe('Container securityContext of the operator and webhook.'),
  })
  .describe('Values of the chaperone Helm chart.');

export type Values = z.infer<typeof valuesSchema>;

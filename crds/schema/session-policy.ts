// SessionPolicy: the single source of truth for the CRD (crds/generate.ts renders it) and for the
// policy half of the sidecar config (sidecar/config renders from it).
import { z } from 'zod';
import { DEFAULT_SPOOL_LIMIT_BYTES } from '../../recording/index.ts';
import { isAgentHoldingGroup } from '../approvers.ts';
import {
  conditionSchema,
  dnsLabelSchema,
  labelSelectorSchema,
  type Protocol,
  portSchema,
  protocolSchema,
  re2PatternSchema,
  secretKeyRefSchema,
  secretRefSchema,
} from './common.ts';

export const tlsSchema = z
  .object({
    mode: z
      .enum(['disable', 'require', 'verify-full'])
      .optional()
      .describe(
        'TLS from the sidecar to the upstream. require checks the chain (caSecret, else the system roots); verify-full also the host name. Default: verify-full when caSecret is set, otherwise disable.',
      ),
    caSecret: secretKeyRefSchema.optional().describe('CA bundle (PEM) to trust for the upstream.'),
    serverName: z.string().optional().describe('Name to verify instead of upstream.host.'),
    allowUnverifiedPassword: z
      .boolean()
      .default(false)
      .describe(
        'Answer a cleartext or md5 password request from an upstream whose identity was not verified (mode other than verify-full). Off: only SCRAM, where the server proves it knows the password, logs in without verify-full.',
      ),
  })
  .describe('TLS settings towards the upstream.');

/** ssh targets: the upstream's pinned host keys and what the agent's channels may ask for. */
export const sshTargetSchema = z
  .object({
    upstreamHostKeys: z
      .array(
        z
          .string()
          .regex(/^[a-z0-9@.-]+ [A-Za-z0-9+/]+=*( .*)?$/)
          .describe('One public key as in known_hosts, without the host name: "<type> <base64> [comment]".'),
      )
      .min(1)
      .describe(
        'Host keys the upstream must present (ssh-keyscan output without the host name). Any other key refuses the session before credentials are sent.',
      ),
    allowEnv: z
      .array(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/))
      .default([])
      .describe('Environment variables the agent may pass (env requests); others are refused and recorded.'),
    allowDirectTcpip: z
      .array(
        z.object({
          host: z.string().min(1).max(253).describe('Destination as the agent names it (no wildcards).'),
          port: portSchema,
        }),
      )
      .default([])
      .describe(
        'Destinations the agent may reach through the upstream host (ssh -L, -W), opened by the upstream and recorded with their byte counts; every other forwarding is refused.',
      ),
    maskOutput: z
      .boolean()
      .default(false)
      .describe(
        "Apply the policy's masking detectors to the stdout and stderr of shell and exec channels, in what the agent receives and what is recorded. Exec output is treated as text: binary protocols over exec (rsync, git) break. sftp and scp transfers are never masked.",
      ),
  })
  .describe('ssh: upstream host-key pinning and channel policy.');

// HTTP and Kubernetes API targets (sidecar/http, sidecar/kube).
export const httpTargetSchema = z
  .object({
    identityHeader: z
      .string()
      .regex(/^[A-Za-z0-9-]+$/)
      .default('authorization')
      .describe(
        'Request header carrying the agent token (authorization: "Bearer <token>"; another header: the token itself). Removed before forwarding.',
      ),
    credential: z
      .enum(['none', 'bearer', 'basic', 'header', 'mtls'])
      .default('none')
      .describe(
        'How the sidecar authenticates upstream, from credentialsSecret: bearer (key token), basic (username, password), header (keys headerName, headerValue), mtls (tls.crt, tls.key).',
      ),
    scheme: z
      .enum(['https', 'http'])
      .default('https')
      .describe('http only for a loopback upstream in tests.'),
    bodyCapBytes: z
      .number()
      .int()
      .min(0)
      .max(16 * 1024 * 1024)
      .default(65_536)
      .describe('Bytes of each request and response body kept in the recording (the SHA-256 covers all).'),
    maskCapBytes: z
      .number()
      .int()
      .min(0)
      .max(64 * 1024 * 1024)
      .default(8 * 1024 * 1024)
      .describe('Largest JSON or text response masked; a bigger one that needs masking is refused (502).'),
  })
  .describe('http and kubernetes targets: identity header, upstream credential, recording caps.');

export const kubernetesTargetSchema = z
  .object({
    upstreamAuth: z
      .enum(['token', 'impersonate'])
      .default('token')
      .describe(
        "token: act with the credentialsSecret token (key token); impersonate: that token's identity impersonates the agent's service account (needs the impersonate verb).",
      ),
    allowSecretData: z
      .boolean()
      .default(false)
      .describe('Let Secret data and stringData reach the agent and the recording (masked otherwise).'),
  })
  .describe('kubernetes targets: how the sidecar acts upstream.');

export const targetSchema = z
  .object({
    name: dnsLabelSchema.describe('Target name; agents see it as env var prefix and in recordings.'),
    protocol: protocolSchema,
    upstream: z
      .object({
        host: z.string().min(1).max(253).describe('Host name or IP of the real server.'),
        port: portSchema.describe('Port of the real server.'),
        database: z
          .string()
          .optional()
          .describe('postgres: database to connect to upstream (default: the one the agent asks for).'),
      })
      .describe('The real server the sidecar connects to.'),
    listenPort: z
      .number()
      .int()
      .min(1024)
      .max(65535)
      .describe('Port on 127.0.0.1 in the pod where the sidecar accepts the agent for this target.'),
    credentialsSecret: secretRefSchema
      .optional()
      .describe(
        'Upstream credentials, mounted only into the sidecar. postgres: keys username, password. ssh: username and privateKey or password. http/kubernetes: token.',
      ),
    tls: tlsSchema.optional(),
    ssh: sshTargetSchema.optional(),
    transparent: z
      .boolean()
      .default(false)
      .describe(
        'Also REDIRECT TCP from agent containers to upstream host:port to listenPort (host must be an IP).',
      ),
    http: httpTargetSchema.optional(),
    kubernetes: kubernetesTargetSchema.optional(),
  })
  .describe('One upstream the agent may reach, only through the sidecar.')
  .meta({
    'x-kubernetes-validations': [
      {
        rule: '!has(self.transparent) || !self.transparent || isIP(self.upstream.host)',
        message:
          'transparent targets need an IP address as upstream.host (iptables matches addresses, not names)',
        fieldPath: '.upstream.host',
      },
    ],
  });
export type Target = z.infer<typeof targetSchema>;

export const issuerSchema = z
  .object({
    issuer: z.url().describe('Issuer URL; its OIDC discovery document names the JWKS.'),
    audiences: z
      .array(z.string().min(1))
      .min(1)
      .describe('Accepted audiences (aud claim); at least one must match.'),
    jwksUri: z.url().optional().describe('JWKS URL, when discovery is not served.'),
    kubernetes: z
      .boolean()
      .default(false)
      .describe("The cluster's own service-account issuer (discovery served by the apiserver)."),
    introspection: z
      .object({
        endpoint: z
          .url()
          .optional()
          .describe('RFC 7662 endpoint (default: introspection_endpoint from discovery).'),
        clientId: z.string().min(1).describe('Client id the sidecar authenticates with (HTTP Basic).'),
        clientSecretSecret: secretKeyRefSchema.describe('The client secret.'),
      })
      .optional()
      .describe(
        'Ask the issuer whether each token is still active (RFC 7662), at session start and on every re-check; a token the issuer revoked is refused.',
      ),
  })
  .describe(
    'A token issuer the sidecar trusts. Issuer, JWKS and introspection URLs must be https (http only on loopback).',
  );
export type Issuer = z.infer<typeof issuerSchema>;

export const identitySchema = z
  .object({
    issuers: z.array(issuerSchema).default([]).describe('Trusted issuers of the token the agent presents.'),
    tokenRequired: z
      .boolean()
      .default(true)
      .describe(
        "Refuse sessions without a valid token. When false, the pod's service account is the identity.",
      ),
    deniedSubjects: z
      .array(z.string().min(1))
      .default([])
      .describe('Subjects (sub claim or system:serviceaccount:ns:name) refused outright, with an alert.'),
    clockSkewSeconds: z
      .number()
      .int()
      .min(0)
      .max(300)
      .default(30)
      .describe(
        'Clock difference tolerated between the token issuer and the sidecar when checking exp and nbf, in seconds.',
      ),
    // Attribution and identity liveness (docs/security.md).
    kubernetesTokenBinding: z
      .enum(['pod', 'serviceAccount', 'any'])
      .default('serviceAccount')
      .describe(
        "Kubernetes tokens: serviceAccount: the token's service account is the pod's and a pod-bound token names this pod; pod: also a pod binding is required; any: tokens of other service accounts and pods are accepted.",
      ),
    legacyServiceAccountTokens: z
      .boolean()
      .default(false)
      .describe('Accept Secret-based service-account tokens (no expiry), validated by TokenReview only.'),
    liveness: z
      .object({
        tokenReview: z
          .boolean()
          .default(false)
          .describe(
            'Check Kubernetes tokens with TokenReview (deleted pod, Secret or service account: refused). The pod service account needs create on tokenreviews.',
          ),
        recheckSeconds: z
          .number()
          .int()
          .min(0)
          .max(86400)
          .default(0)
          .describe(
            'Re-check the identity of running sessions this often (0: only at session start); a revoked one ends the session.',
          ),
        maxTokenAgeSeconds: z
          .number()
          .int()
          .min(1)
          .optional()
          .describe('Refuse tokens issued (iat) longer ago than this, for issuers without introspection.'),
      })
      .prefault({})
      .describe('Whether an identity is still valid, beyond its signature.'),
    offboarding: z
      .object({
        configMap: z
          .object({ name: z.string().min(1), key: z.string().min(1).default('offboarded') })
          .optional()
          .describe(
            'ConfigMap in the policy namespace; the key holds JSON [{subject, date}] or lines "subject date".',
          ),
        url: z.url().optional().describe('HTTPS endpoint answering the same list.'),
        action: z
          .enum(['deny', 'flag'])
          .default('deny')
          .describe('deny: refuse the session; flag: allow it, record and alert the mismatch.'),
        refreshSeconds: z.number().int().min(5).max(86400).default(60),
      })
      .optional()
      .describe('Identities offboarded on a date; their sessions are refused or flagged, and alerted.'),
  })
  .describe('How the agent proves who it is.');
export type Identity = z.infer<typeof identitySchema>;

export const sqlClassSchema = z.enum([
  'drop',
  'truncate',
  'deleteWithoutWhere',
  'updateWithoutWhere',
  'alterRole',
  'createRole',
  'grant',
  'copyToProgram',
  'copyFromProgram',
  'multiStatement',
  'ddl',
  'write',
  'read',
  'unparseable',
]);
export type SqlClass = z.infer<typeof sqlClassSchema>;

export const guardrailActionSchema = z.enum(['allow', 'block', 'requireApproval', 'alert']);
export type GuardrailAction = z.infer<typeof guardrailActionSchema>;

export const guardrailSchema = z
  .object({
    name: dnsLabelSchema.describe('Rule name, recorded with every decision it makes.'),
    targets: z.array(dnsLabelSchema).optional().describe('Targets the rule applies to (default: all).'),
    match: z
      .object({
        sqlClasses: z
          .array(sqlClassSchema)
          .optional()
          .describe('postgres: statement classes found by parsing the SQL (any matches).'),
        statementTypes: z
          .array(z.string().min(1))
          .optional()
          .describe('postgres: parse-tree node names, e.g. DropStmt, VacuumStmt (any matches).'),
        sqlPattern: re2PatternSchema.optional().describe('postgres: RE2 run on the statement text.'),
        commandPattern: re2PatternSchema
          .optional()
          .describe('ssh: RE2 run on exec commands and shell lines.'),
        httpMethods: z.array(z.string().min(1)).optional().describe('http/kubernetes: request methods.'),
        pathPattern: re2PatternSchema
          .optional()
          .describe('http/kubernetes: RE2 run on the request path. ssh: on sftp and scp file paths.'),
        kubernetes: z
          .object({
            verbs: z
              .array(z.string().min(1))
              .optional()
              .describe('get, list, watch, create, update, patch, delete, deletecollection, ...'),
            apiGroups: z.array(z.string()).optional().describe('"" is the core group.'),
            resources: z.array(z.string().min(1)).optional(),
            subresources: z
              .array(z.string().min(1))
              .optional()
              .describe('exec, attach, portforward, log, status, ...'),
            namespaces: z.array(z.string().min(1)).optional(),
            names: z.array(z.string().min(1)).optional(),
          })
          .optional()
          .describe('kubernetes: request attributes as the apiserver sees them (each list: any matches).'),
        jsonBody: z
          .array(
            z.object({
              field: z
                .string()
                .min(1)
                .max(256)
                .describe('Dot path into the JSON request body: spec.replicas, items.0.name.'),
              pattern: re2PatternSchema.describe(
                'RE2 run on the value: a string as it is, anything else as its JSON text.',
              ),
            }),
          )
          .min(1)
          .max(16)
          .optional()
          .describe(
            'http/kubernetes: conditions on the JSON request body (all must hold; an absent field does not). A body that is not JSON or is larger than http.maskCapBytes meets them: what the sidecar cannot read is not waved through. Needs httpMethods or kubernetes in the same rule.',
          ),
      })
      .refine((m) => m.jsonBody === undefined || m.httpMethods !== undefined || m.kubernetes !== undefined, {
        message:
          'jsonBody needs httpMethods or kubernetes in the same match (so the rule names HTTP requests)',
      })
      .describe('All given fields must match.'),
    action: guardrailActionSchema.describe(
      'What happens on a match. Rules are evaluated in order; first match wins.',
    ),
    message: z.string().max(512).optional().describe('Shown to the agent when blocked.'),
  })
  .describe('A guardrail rule.');
export type Guardrail = z.infer<typeof guardrailSchema>;

/**
 * The protocols each match condition speaks of. A rule applies to a protocol's traffic only when
 * every condition it sets speaks of that protocol, so a rule written for one gateway never fires,
 * half-read, in another. Every condition must be listed (the type checks it).
 */
export const GUARDRAIL_CONDITION_PROTOCOLS = {
  sqlClasses: ['postgres'],
  statementTypes: ['postgres'],
  sqlPattern: ['postgres'],
  commandPattern: ['ssh'],
  httpMethods: ['http', 'kubernetes'],
  pathPattern: ['http', 'kubernetes', 'ssh'],
  kubernetes: ['kubernetes'],
  jsonBody: ['http', 'kubernetes'],
} as const satisfies Record<keyof Guardrail['match'], readonly Protocol[]>;

export function guardrailAppliesTo(match: Guardrail['match'], protocol: Protocol): boolean {
  return (Object.keys(GUARDRAIL_CONDITION_PROTOCOLS) as (keyof Guardrail['match'])[]).every(
    (condition) =>
      match[condition] === undefined ||
      (GUARDRAIL_CONDITION_PROTOCOLS[condition] as readonly Protocol[]).includes(protocol),
  );
}

export const maskStrategySchema = z
  .enum(['redact', 'partial', 'hash'])
  .describe('redact: replace with ****; partial: keep the last 4 characters; hash: keyed SHA-256 prefix.');

export const maskingSchema = z
  .object({
    columns: z
      .array(
        z.object({
          pattern: re2PatternSchema.describe('RE2 on the column name.'),
          strategy: maskStrategySchema.default('redact'),
        }),
      )
      .default([]),
    detectors: z
      .array(
        z.object({
          type: z.enum(['creditCard', 'email', 'iban', 'nationalId', 'custom']),
          pattern: re2PatternSchema.optional().describe('custom: RE2 on the value.'),
          strategy: maskStrategySchema.default('redact'),
        }),
      )
      .default([]),
    keepOriginals: z
      .boolean()
      .default(false)
      .describe('Also record unmasked values (the recording then holds the sensitive data).'),
  })
  .describe('What the agent never sees.');
export type Masking = z.infer<typeof maskingSchema>;

export const approvalsSchema = z
  .object({
    timeoutSeconds: z
      .number()
      .int()
      .min(1)
      .max(86400)
      .default(300)
      .describe('How long a statement waits for a decision.'),
    reviewers: z
      .object({
        users: z.array(z.string().min(1).max(253)).max(256).default([]),
        groups: z
          .array(z.string().min(1).max(253))
          .max(256)
          .default([])
          .refine((groups) => !groups.some(isAgentHoldingGroup), {
            message:
              'groups must not hold the agents themselves (system:authenticated, system:unauthenticated, system:serviceaccounts[:namespace])',
          })
          .meta({
            'x-kubernetes-validations': [
              {
                rule: "self.all(g, !(g in ['system:authenticated', 'system:unauthenticated', 'system:serviceaccounts']) && !g.startsWith('system:serviceaccounts:'))",
                message:
                  'groups must not hold the agents themselves (system:authenticated, system:unauthenticated, system:serviceaccounts[:namespace])',
              },
            ],
          }),
      })
      .optional()
      .describe(
        'Who may decide (also enforced by RBAC on SessionApproval). Absent or empty: anyone RBAC allows, except the requesting session and the service accounts of its namespace.',
      ),
  })
  .describe('Just-in-time approvals for requireApproval rules.');

export const alertsSchema = z
  .object({
    webhookUrl: z.url().optional().describe('Slack-compatible incoming webhook receiving policy hits.'),
    webhookUrlSecret: secretKeyRefSchema.optional().describe('The webhook URL from a Secret instead.'),
    on: z
      .array(
        z.enum([
          'blocked',
          'approval',
          'deniedSubject',
          'alert',
          'invalidToken',
          'identityRevoked',
          'offboarded',
        ]),
      )
      .default(['blocked', 'approval', 'deniedSubject', 'alert', 'identityRevoked', 'offboarded']),
  })
  .describe('Where policy hits are sent.');

export const recordingSchema = z
  .object({
    store: z
      .object({
        url: z
          .string()
          .regex(/^(s3|file):\/\//, 'must start with s3:// or file://')
          .describe('s3://bucket/prefix or file:///dir (single machine only).'),
        endpoint: z.url().optional().describe('S3 endpoint for S3-compatible stores (MinIO).'),
        region: z.string().default('us-east-1'),
        forcePathStyle: z.boolean().default(true),
        credentialsSecret: secretRefSchema
          .optional()
          .describe('Keys accessKeyId and secretAccessKey; absent: the default AWS credential chain.'),
      })
      .describe('Where sealed segments are stored.'),
    signingKeySecret: secretRefSchema.describe(
      'Ed25519 private key (key privateKey, PEM) that signs segment manifests.',
    ),
    retentionDays: z.number().int().min(1).max(36500).default(365),
    objectLock: z
      .object({ mode: z.enum(['GOVERNANCE', 'COMPLIANCE']) })
      .optional()
      .describe('Object Lock retain-until on every segment (bucket must have Object Lock enabled).'),
    failMode: z
      .enum(['failClosed', 'failOpen'])
      .default('failClosed')
      .describe(
        'Store down and spool full: failClosed makes new work wait; failOpen lets traffic go on with a signed gap.',
      ),
    durability: z
      .enum(['strict', 'batched'])
      .optional()
      .describe(
        'strict: a statement reaches the upstream only after its event is durably journaled (a killed sidecar loses nothing it forwarded); batched: events are journaled in groups behind the traffic (a crash loses at most the unsettled appends, marked as a gap). Default: strict with failClosed, batched with failOpen.',
      ),
    segment: z
      .object({
        maxBytes: z
          .number()
          .int()
          .min(65536)
          .default(4 * 1024 * 1024),
        maxSeconds: z.number().int().min(1).default(10),
      })
      .prefault({}),
    spoolLimitBytes: z
      .number()
      .int()
      .min(1048576)
      .default(DEFAULT_SPOOL_LIMIT_BYTES)
      .describe(
        'Bound on unsent local data in the sidecar spool (an emptyDir): events not sealed yet plus segments not uploaded yet.',
      ),
  })
  .describe('Recording and storage.');
export type RecordingPolicy = z.infer<typeof recordingSchema>;

export const sessionPolicySpecSchema = z
  .object({
    podSelector: labelSelectorSchema.prefault({}),
    targets: z
      .array(targetSchema)
      .min(1)
      .max(64)
      .describe('Upstreams reached only through the sidecar. Names and listen ports are unique.')
      .meta({
        'x-kubernetes-list-type': 'map',
        'x-kubernetes-list-map-keys': ['name'],
        'x-kubernetes-validations': [
          {
            rule: 'self.all(t, self.exists_one(u, u.listenPort == t.listenPort))',
            message: 'listenPort must be unique across targets',
          },
        ],
      }),
    identity: identitySchema.prefault({}),
    guardrails: z
      .array(guardrailSchema)
      .default([])
      .describe('Rules evaluated in order on every statement, command or request; first match wins.')
      .meta({ 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['name'] }),
    masking: maskingSchema.prefault({}),
    approvals: approvalsSchema.prefault({}),
    alerts: alertsSchema.optional(),
    recording: recordingSchema,
    inboundPorts: z
      .array(
        z.object({
          port: z.number().int().min(1).max(65535),
          protocol: z.enum(['TCP', 'UDP']).default('TCP'),
        }),
      )
      .max(64)
      .default([])
      .describe(
        'Ports on which the pod accepts new connections from outside it (Services, probes); all other inbound connections are refused by the capture rules. The sidecar admin port is always open.',
      ),
  })
  .describe('Which pods are recorded, which upstreams they reach, and the rules of their sessions.');
export type SessionPolicySpec = z.infer<typeof sessionPolicySpecSchema>;
export type SessionPolicySpecInput = z.input<typeof sessionPolicySpecSchema>;

export const sessionPolicyStatusSchema = z
  .object({
    observedGeneration: z
      .number()
      .int()
      .optional()
      .describe('The metadata.generation the operator last rendered.'),
    conditions: z
      .array(conditionSchema)
      .optional()
      .describe('Ready: the sidecar config ConfigMap is rendered for observedGeneration.')
      .meta({ 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['type'] }),
    configMapName: z.string().optional().describe('ConfigMap holding the rendered sidecar config.'),
    networkPolicyName: z.string().optional().describe('NetworkPolicy rendered as defence in depth.'),
  })
  .describe('Written by the operator.');

export const SESSION_POLICY = {
  group: 'chaperone.dev',
  version: 'v1alpha1',
  kind: 'SessionPolicy',
  plural: 'sessionpolicies',
  singular: 'sessionpolicy',
  shortNames: ['spol'],
} as const;

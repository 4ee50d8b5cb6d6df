// The SessionPolicy as the operator sees it, and the checks the CRD schema cannot express.
import { isIP } from 'node:net';
import type { z } from 'zod';
import { SESSION_POLICY, type SessionPolicySpec, sessionPolicySpecSchema } from '../../crds/index.ts';

export const SESSION_POLICY_API_VERSION = `${SESSION_POLICY.group}/${SESSION_POLICY.version}`;

/** A SessionPolicy object as read from the API: the spec is raw until parsed. */
export interface SessionPolicyObject {
  apiVersion?: string;
  kind?: string;
  metadata: {
    name: string;
    namespace?: string;
    uid?: string;
    generation?: number;
    resourceVersion?: string;
    labels?: Record<string, string>;
  };
  spec?: unknown;
  status?: unknown;
}

/** A policy the operator refuses, with the Ready condition reason that explains why. */
export class PolicyInvalidError extends Error {
  readonly reason: string;
  constructor(reason: string, message: string) {
    super(message);
    this.name = 'PolicyInvalidError';
    this.reason = reason;
  }
}

function formatIssues(error: z.ZodError): string {
  return error.issues
    .map((issue) => `${issue.path.length > 0 ? issue.path.join('.') : '(spec)'}: ${issue.message}`)
    .join('; ');
}

/** Parses the spec with the CRD's zod schema (defaults applied); InvalidSpec when it does not fit. */
export function parsePolicySpec(policy: SessionPolicyObject): SessionPolicySpec {
  const parsed = sessionPolicySpecSchema.safeParse(policy.spec ?? {});
  if (!parsed.success) throw new PolicyInvalidError('InvalidSpec', formatIssues(parsed.error));
  return parsed.data;
}

/** Label values are at most 63 characters and children are named after the policy. */
const MAX_POLICY_NAME = 63;

/**
 * Semantic rules beyond the schema: things a single field cannot know about its neighbours.
 * Returns human-readable problems, empty when the policy is consistent.
 */
export function semanticProblems(
  name: string,
  spec: SessionPolicySpec,
  options: { adminPort: number },
): string[] {
  const problems: string[] = [];
  if (name.length > MAX_POLICY_NAME) {
    problems.push(`policy name is ${name.length} characters; at most ${MAX_POLICY_NAME} are allowed`);
  }
  const names = new Set<string>();
  const ports = new Map<number, string>();
  for (const target of spec.targets) {
    if (names.has(target.name)) problems.push(`target name "${target.name}" is used twice`);
    names.add(target.name);
    const other = ports.get(target.listenPort);
    if (other !== undefined) {
      problems.push(`targets "${other}" and "${target.name}" both listen on port ${target.listenPort}`);
    }
    ports.set(target.listenPort, target.name);
    if (target.listenPort === options.adminPort) {
      problems.push(`target "${target.name}" listens on the sidecar's admin port ${options.adminPort}`);
    }
    if (target.transparent && isIP(target.upstream.host) === 0) {
      problems.push(
        `target "${target.name}" is transparent but upstream.host "${target.upstream.host}" is not an IP address`,
      );
    }
  }
  for (const rule of spec.guardrails) {
    for (const target of rule.targets ?? []) {
      if (!names.has(target)) problems.push(`guardrail "${rule.name}" names unknown target "${target}"`);
    }
  }
  const ruleNames = new Set<string>();
  for (const rule of spec.guardrails) {
    if (ruleNames.has(rule.name)) problems.push(`guardrail name "${rule.name}" is used twice`);
    ruleNames.add(rule.name);
  }
  const store = spec.recording.store;
  if (store.url.startsWith('file://') && spec.recording.objectLock) {
    problems.push('recording.objectLock needs an s3:// store');
  }
  if (store.url.startsWith('s3://') && parseS3Url(store.url) === undefined) {
    problems.push(`recording.store.url "${store.url}" names no bucket`);
  }
  return problems;
}

export interface S3Location {
  bucket: string;
  /** Key prefix without leading slash; '' for the whole bucket, else ending in '/'. */
  prefix: string;
}

/** s3://bucket/some/prefix -> { bucket, prefix: 'some/prefix/' }. */
export function parseS3Url(url: string): S3Location | undefined {
  const match = /^s3:\/\/([^/]+)\/?(.*)$/.exec(url);
  if (!match?.[1]) return undefined;
  const rest = (match[2] ?? '').replace(/^\/+/, '');
  return { bucket: match[1], prefix: rest === '' || rest.endsWith('/') ? rest : `${rest}/` };
}

/** A Secret the policy refers to, with the keys it must hold. */
export interface SecretReference {
  name: string;
  keys: string[];
  /** Where in the spec it is referenced, for the error message. */
  usedBy: string;
}

export function secretReferences(spec: SessionPolicySpec): SecretReference[] {
  const refs: SecretReference[] = [];
  for (const target of spec.targets) {
    if (target.credentialsSecret) {
      // The keys depend on the auth method the upstream uses; the sidecar reports missing files.
      refs.push({
        name: target.credentialsSecret.name,
        keys: [],
        usedBy: `targets[${target.name}].credentialsSecret`,
      });
    }
    if (target.tls?.caSecret) {
      refs.push({
        name: target.tls.caSecret.name,
        keys: [target.tls.caSecret.key],
        usedBy: `targets[${target.name}].tls.caSecret`,
      });
    }
  }
  refs.push({
    name: spec.recording.signingKeySecret.name,
    keys: ['privateKey'],
    usedBy: 'recording.signingKeySecret',
  });
  if (spec.recording.store.credentialsSecret) {
    refs.push({
      name: spec.recording.store.credentialsSecret.name,
      keys: ['accessKeyId', 'secretAccessKey'],
      usedBy: 'recording.store.credentialsSecret',
    });
  }
  for (const issuer of spec.identity.issuers) {
    if (issuer.introspection) {
      refs.push({
        name: issuer.introspection.clientSecretSecret.name,
        keys: [issuer.introspection.clientSecretSecret.key],
        usedBy: `identity.issuers[${issuer.issuer}].introspection.clientSecretSecret`,
      });
    }
  }
  if (spec.alerts?.webhookUrlSecret) {
    refs.push({
      name: spec.alerts.webhookUrlSecret.name,
      keys: [spec.alerts.webhookUrlSecret.key],
      usedBy: 'alerts.webhookUrlSecret',
    });
  }
  return refs;
}

// SessionPolicy checks the schema cannot express, with messages naming the field. Missing Secrets
// are warnings: they may legitimately be created after the policy.
import { isIP } from 'node:net';

import { type SessionPolicySpec, sessionPolicySpecSchema } from '../../crds/index.ts';
import type { AdmissionRequest, Decision } from '../admission.ts';
import { allow, deny } from '../admission.ts';
import type { ClusterReader } from '../cluster.ts';

export interface PolicyCheckOptions {
  adminPort: number;
}

export interface PolicyProblems {
  errors: string[];
  warnings: string[];
}

const PROTOCOL_FIELDS: Record<string, string[]> = {
  sqlClasses: ['postgres'],
  statementTypes: ['postgres'],
  sqlPattern: ['postgres'],
  commandPattern: ['ssh'],
  httpMethods: ['http', 'kubernetes'],
  pathPattern: ['http', 'kubernetes'],
};

function issuePath(path: readonly PropertyKey[]): string {
  return path.reduce<string>(
    (acc, key) => (typeof key === 'number' ? `${acc}[${key}]` : `${acc}.${String(key)}`),
    'spec',
  );
}

/** Problems of a spec as written (errors refuse the policy; warnings are shown to the client). */
export function policyProblems(
  input: unknown,
  options: PolicyCheckOptions,
): PolicyProblems & { spec?: SessionPolicySpec } {
  const parsed = sessionPolicySpecSchema.safeParse(input);
  if (!parsed.success) {
    return { errors: parsed.error.issues.map((i) => `${issuePath(i.path)}: ${i.message}`), warnings: [] };
  }
  const spec = parsed.data;
  const errors: string[] = [];
  const warnings: string[] = [];
  const names = spec.targets.map((t) => t.name);
  const ports = new Map<number, string>();
  spec.targets.forEach((t, i) => {
    const at = `spec.targets[${i}] (${t.name})`;
    if (t.transparent && isIP(t.upstream.host) === 0) {
      errors.push(
        `${at}: transparent needs upstream.host to be an IP address (iptables matches addresses), got "${t.upstream.host}"`,
      );
    }
    if (t.listenPort === options.adminPort) {
      errors.push(`${at}: listenPort ${t.listenPort} is the sidecar's admin port`);
    }
    const other = ports.get(t.listenPort);
    if (other) errors.push(`${at}: listenPort ${t.listenPort} is already used by target ${other}`);
    ports.set(t.listenPort, t.name);
    const tlsMode = t.tls?.mode ?? (t.tls?.caSecret ? 'verify-full' : 'disable');
    if (t.tls && tlsMode === 'disable' && t.credentialsSecret && t.protocol !== 'ssh') {
      warnings.push(`${at}: credentials go to the upstream without TLS (tls.mode disable)`);
    }
  });
  spec.guardrails.forEach((g, i) => {
    const at = `spec.guardrails[${i}] (${g.name})`;
    const unknown = (g.targets ?? []).filter((t) => !names.includes(t));
    if (unknown.length > 0) {
      errors.push(`${at}: targets ${unknown.join(', ')} not found among spec.targets (${names.join(', ')})`);
    }
    const protocols = new Set(
      spec.targets.filter((t) => !g.targets || g.targets.includes(t.name)).map((t) => t.protocol),
    );
    for (const [field, applies] of Object.entries(PROTOCOL_FIELDS)) {
      if (
        (g.match as Record<string, unknown>)[field] !== undefined &&
        !applies.some((p) => protocols.has(p as never))
      ) {
        warnings.push(
          `${at}: match.${field} applies to ${applies.join('/')} targets only; this rule never matches with it`,
        );
      }
    }
    if (g.action === 'requireApproval') {
      const reviewers = spec.approvals.reviewers;
      if (!reviewers || (reviewers.users.length === 0 && reviewers.groups.length === 0)) {
        warnings.push(
          `${at}: requireApproval without spec.approvals.reviewers: anyone allowed to update sessionapprovals/status can approve`,
        );
      }
    }
  });
  if (spec.recording.store.url.startsWith('file://')) {
    warnings.push(
      'spec.recording.store.url: file:// stores recordings inside the pod only (single-machine use)',
    );
  }
  return { errors, warnings, spec };
}

/** Every Secret the spec names, with the field naming it. */
export function secretReferences(spec: SessionPolicySpec): Array<{ name: string; field: string }> {
  const refs: Array<{ name: string; field: string }> = [];
  spec.targets.forEach((t, i) => {
    if (t.credentialsSecret)
      refs.push({ name: t.credentialsSecret.name, field: `spec.targets[${i}].credentialsSecret` });
    if (t.tls?.caSecret) refs.push({ name: t.tls.caSecret.name, field: `spec.targets[${i}].tls.caSecret` });
  });
  refs.push({ name: spec.recording.signingKeySecret.name, field: 'spec.recording.signingKeySecret' });
  if (spec.recording.store.credentialsSecret) {
    refs.push({
      name: spec.recording.store.credentialsSecret.name,
      field: 'spec.recording.store.credentialsSecret',
    });
  }
  if (spec.alerts?.webhookUrlSecret) {
    refs.push({ name: spec.alerts.webhookUrlSecret.name, field: 'spec.alerts.webhookUrlSecret' });
  }
  return refs;
}

export async function validateSessionPolicy(
  req: AdmissionRequest,
  deps: { cluster: ClusterReader; adminPort: number },
): Promise<Decision> {
  if (req.operation !== 'CREATE' && req.operation !== 'UPDATE') return allow();
  const object = req.object as { metadata?: { name?: string; namespace?: string }; spec?: unknown };
  const { errors, warnings, spec } = policyProblems(object.spec, { adminPort: deps.adminPort });
  if (errors.length > 0) {
    return deny(`chaperone: SessionPolicy ${object.metadata?.name ?? ''} is invalid: ${errors.join('; ')}`);
  }
  const namespace = req.namespace ?? object.metadata?.namespace ?? '';
  const refs = spec ? secretReferences(spec) : [];
  const found = await Promise.all(refs.map((r) => deps.cluster.secretExists(namespace, r.name)));
  refs.forEach((ref, i) => {
    if (found[i] === false) {
      warnings.push(
        `${ref.field}: Secret ${ref.name} does not exist in namespace ${namespace} yet; injected pods will not start without it`,
      );
    } else if (found[i] === undefined) {
      warnings.push(`${ref.field}: could not check that Secret ${ref.name} exists (no permission)`);
    }
  });
  return allow(warnings);
}

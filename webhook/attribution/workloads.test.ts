// The workloads handler on admission requests as the apiserver sends them: a CronJob's nested
// template is stamped, the Job the cronjob controller makes from it keeps the stamp, and the
// validating webhook refuses a stamp that differs from the decision.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fastJsonPatch from 'fast-json-patch';
import type { AdmissionRequest } from '../admission.ts';
import { mutateWorkload, validateWorkload } from '../handlers/workloads.ts';
import { LAUNCHED_BY_ANNOTATION } from './launcher.ts';

const template = {
  metadata: { labels: { app: 'agent' } },
  spec: { containers: [{ name: 'a', image: 'x' }] },
};

function request(
  kind: string,
  object: object,
  username: string,
  extra: Partial<AdmissionRequest> = {},
): AdmissionRequest {
  return {
    uid: '1',
    kind: { group: 'batch', version: 'v1', kind },
    resource: { group: 'batch', version: 'v1', resource: `${kind.toLowerCase()}s` },
    namespace: 'ns',
    operation: 'CREATE',
    userInfo: { username, groups: ['system:authenticated'] },
    object,
    ...extra,
  };
}

type Template = { metadata: { annotations: Record<string, string> } };
type Doc = { spec: { template: Template; jobTemplate: { spec: { template: Template } } } };

function applied(req: AdmissionRequest): Doc {
  const d = mutateWorkload(req);
  assert.ok(d.allowed);
  return fastJsonPatch.applyPatch(structuredClone(req.object), d.patch ?? []).newDocument as Doc;
}

describe('workloads handler', () => {
  it('stamps the nested template of a CronJob, and the Job made from it keeps the stamp', () => {
    const cron = {
      metadata: { name: 'nightly' },
      spec: { schedule: '@daily', jobTemplate: { spec: { template } } },
    };
    const out = applied(request('CronJob', cron, 'alice'));
    const stamp = out.spec.jobTemplate.spec.template.metadata.annotations[LAUNCHED_BY_ANNOTATION] as string;
    assert.equal(JSON.parse(stamp).username, 'alice');
    assert.equal(validateWorkload(request('CronJob', out, 'alice')).allowed, true);

    const job = {
      metadata: {
        name: 'nightly-1',
        ownerReferences: [{ kind: 'CronJob', name: 'nightly', controller: true }],
      },
      spec: { template: out.spec.jobTemplate.spec.template },
    };
    const controller = 'system:serviceaccount:kube-system:cronjob-controller';
    const jobOut = applied(request('Job', job, controller));
    assert.equal(jobOut.spec.template.metadata.annotations[LAUNCHED_BY_ANNOTATION], stamp);
    assert.equal(validateWorkload(request('Job', jobOut, controller)).allowed, true);
  });

  it('the validating webhook refuses a stamp a later mutation changed', () => {
    const job = { metadata: { name: 'j' }, spec: { template } };
    const out = applied(request('Job', job, 'alice'));
    out.spec.template.metadata.annotations[LAUNCHED_BY_ANNOTATION] = JSON.stringify({
      username: 'alice',
      via: { kind: 'Job' },
    });
    const d = validateWorkload(request('Job', out, 'alice'));
    assert.equal(d.allowed, false);
  });

  it('a generated name (assigned between mutating and validating admission) keeps the stamp valid', () => {
    const job = { metadata: { generateName: 'migrate-' }, spec: { template } };
    const out = applied(request('Job', job, 'alice'));
    const named = { ...out, metadata: { generateName: 'migrate-', name: 'migrate-x7k2p' } };
    const d = validateWorkload(request('Job', named, 'alice', { name: 'migrate-x7k2p' }));
    assert.equal(d.allowed, true, JSON.stringify(d));
  });

  it('leaves other kinds and subresources alone', () => {
    assert.deepEqual(mutateWorkload(request('Lease', { metadata: {} }, 'alice')), { allowed: true });
    assert.deepEqual(
      mutateWorkload(
        request('Job', { metadata: {}, spec: { template } }, 'alice', { subResource: 'status' }),
      ),
      { allowed: true },
    );
  });
});

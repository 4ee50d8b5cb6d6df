// Admission of workloads whose pod template becomes pods (Deployment, ReplicaSet, StatefulSet,
// DaemonSet, Job, CronJob) in opted-in namespaces: stamp who launched them into the template
// (mutating), refuse a forged or edited stamp (validating). See webhook/attribution/.
import fastJsonPatch from 'fast-json-patch';
import type { AdmissionRequest, Decision } from '../admission.ts';
import { allow, deny } from '../admission.ts';
import { applyStamp, LAUNCHED_BY_ANNOTATION, stampFor, stampHolds } from '../attribution/index.ts';

const PREFIX = 'chaperone: ';

export function mutateWorkload(req: AdmissionRequest, controllers?: readonly string[]): Decision {
  const decision = stampFor(req, controllers);
  if (!decision) return allow();
  if (decision.kind === 'deny') return deny(PREFIX + decision.message);
  const mutated = structuredClone(req.object) as object;
  applyStamp(mutated, req.kind.kind, decision);
  const patch = fastJsonPatch.compare(req.object as object, mutated);
  return patch.length > 0 ? { allowed: true, patch } : allow();
}

export function validateWorkload(req: AdmissionRequest, controllers?: readonly string[]): Decision {
  const decision = stampFor(req, controllers);
  if (!decision) return allow();
  if (decision.kind === 'deny') return deny(PREFIX + decision.message);
  if (!stampHolds(req.object, req.kind.kind, decision)) {
    return deny(
      `${PREFIX}the pod template's annotation ${LAUNCHED_BY_ANNOTATION} differs from the launcher chaperone recorded (changed after admission?)`,
    );
  }
  return allow();
}

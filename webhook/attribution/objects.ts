// Where the launcher annotation lives on each kind the webhook attributes, and applying a decision
// to a raw admission object (never parsed through a schema: unknown fields must survive).
import { isDeepStrictEqual } from 'node:util';
import type { AdmissionRequest } from '../admission.ts';
import { cloneJson } from '../clone.ts';
import { LAUNCHED_BY_ANNOTATION } from './launcher.ts';
import { decideStamp, type StampDecision } from './stamp.ts';

interface Meta {
  annotations?: Record<string, string>;
  ownerReferences?: { controller?: boolean }[];
  name?: string;
  generateName?: string;
  namespace?: string;
}
type Obj = { metadata?: Meta; spec?: Record<string, unknown> };

/** Kinds whose pod template carries the stamp, and the path to that template. */
export const WORKLOAD_TEMPLATE_PATHS: Record<string, readonly string[]> = {
  Deployment: ['spec', 'template'],
  ReplicaSet: ['spec', 'template'],
  StatefulSet: ['spec', 'template'],
  DaemonSet: ['spec', 'template'],
  Job: ['spec', 'template'],
  CronJob: ['spec', 'jobTemplate', 'spec', 'template'],
};

/** The object that holds the annotation: the pod itself, or the workload's pod template. */
function holder(obj: Obj | undefined, kind: string): Obj | undefined {
  if (!obj) return undefined;
  if (kind === 'Pod') return obj;
  const path = WORKLOAD_TEMPLATE_PATHS[kind];
  if (!path) return undefined;
  let at: unknown = obj;
  for (const key of path) at = (at as Record<string, unknown> | undefined)?.[key];
  return at as Obj | undefined;
}

function annotation(obj: Obj | undefined): string | undefined {
  return obj?.metadata?.annotations?.[LAUNCHED_BY_ANNOTATION];
}

function withoutStamp(obj: Obj | undefined): unknown {
  if (!obj) return undefined;
  const copy = cloneJson(obj);
  const annotations = copy.metadata?.annotations;
  if (annotations) {
    delete annotations[LAUNCHED_BY_ANNOTATION];
    if (Object.keys(annotations).length === 0) delete copy.metadata!.annotations;
  }
  return copy;
}

/** The decision for this request (CREATE/UPDATE of a Pod or a workload kind), or undefined when not ours. */
export function stampFor(req: AdmissionRequest, controllers?: readonly string[]): StampDecision | undefined {
  const kind = req.kind.kind;
  if (req.subResource || (req.operation !== 'CREATE' && req.operation !== 'UPDATE')) return undefined;
  const object = req.object as Obj | undefined;
  const target = holder(object, kind);
  if (!object || (kind !== 'Pod' && !target)) return undefined;
  const before = holder(req.oldObject as Obj | undefined, kind);
  // A generated name does not exist yet when the mutating webhook runs (the apiserver assigns it
  // between mutating and validating admission), so a stamp names only objects named by their creator:
  // otherwise the validating webhook would see a stamp that differs from the one it renders.
  const name = object.metadata?.generateName ? undefined : (object.metadata?.name ?? req.name);
  return decideStamp({
    req: {
      userInfo: req.userInfo,
      kind,
      namespace: req.namespace ?? object.metadata?.namespace ?? '',
      ...(name ? { name } : {}),
    },
    operation: req.operation,
    current: annotation(target),
    previous: annotation(before),
    templateChanged:
      req.operation === 'UPDATE' && !isDeepStrictEqual(withoutStamp(target), withoutStamp(before)),
    controlled: (object.metadata?.ownerReferences ?? []).some((r) => r.controller === true),
    ...(controllers ? { controllers } : {}),
  });
}

/** Writes a `set` decision into a copy's annotation (in place); the caller diffs against the raw object. */
export function applyStamp(object: unknown, kind: string, decision: StampDecision): void {
  if (decision.kind !== 'set') return;
  const target = holder(object as Obj, kind);
  if (!target) return;
  target.metadata ??= {};
  target.metadata.annotations = { ...target.metadata.annotations, [LAUNCHED_BY_ANNOTATION]: decision.value };
}

/** Whether the object as submitted already carries exactly what the decision says. */
export function stampHolds(object: unknown, kind: string, decision: StampDecision): boolean {
  if (decision.kind === 'deny') return false;
  const current = annotation(holder(object as Obj, kind));
  return decision.kind === 'none' ? current === undefined : current === decision.value;
}

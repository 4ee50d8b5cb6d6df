// Guardrails for HTTP and Kubernetes API requests: the policy's rules that name HTTP or
// Kubernetes terms (and no SQL or shell terms), first match wins. Paths are matched decoded
// (sidecar/http/path.ts), methods upper-case.
import { RE2JS } from 're2js';
import { type Guardrail, type GuardrailAction, guardrailAppliesTo } from '../../crds/index.ts';
import type { KubeRequestInfo } from '../kube/request-info.ts';

export interface HttpDecision {
  action: GuardrailAction;
  rule?: string;
  message?: string;
}

interface CompiledRule {
  name: string;
  action: GuardrailAction;
  message?: string;
  methods?: ReadonlySet<string>;
  pattern?: RE2JS;
  kube?: NonNullable<Guardrail['match']['kubernetes']>;
  body?: { path: string[]; pattern: RE2JS }[];
}

/** The request body as a guardrail's jsonBody conditions see it. */
export type GuardBody = { json: unknown } | 'unreadable';

function appliesTo(rule: Guardrail, kube: boolean): boolean {
  return guardrailAppliesTo(rule.match, kube ? 'kubernetes' : 'http');
}

export interface HttpGuard {
  /**
   * body: the JSON request body for rules with jsonBody conditions (read only when needsBody says
   * so); without it such rules do not match.
   */
  decide(method: string, path: string, kube?: KubeRequestInfo, body?: GuardBody): HttpDecision;
  /** Whether a rule that could match this request looks at its body. */
  needsBody(method: string, path: string, kube?: KubeRequestInfo): boolean;
}

/** A dot path's value in a JSON document; undefined when absent. */
function valueAt(doc: unknown, path: readonly string[]): unknown {
  let v = doc;
  for (const key of path) {
    if (typeof v !== 'object' || v === null || !Object.hasOwn(v, key)) return undefined;
    v = (v as Record<string, unknown>)[key];
  }
  return v;
}

function bodyMatches(conds: NonNullable<CompiledRule['body']>, body: GuardBody | undefined): boolean {
  if (body === undefined) return false;
  // What the sidecar cannot read meets every condition (fail closed).
  if (body === 'unreadable') return true;
  return conds.every((c) => {
    const v = valueAt(body.json, c.path);
    if (v === undefined) return false;
    return c.pattern.test(typeof v === 'string' ? v : JSON.stringify(v));
  });
}

export function createHttpGuard(rules: readonly Guardrail[], target: string, kube: boolean): HttpGuard {
  const compiled: CompiledRule[] = rules
    .filter((r) => (r.targets === undefined || r.targets.includes(target)) && appliesTo(r, kube))
    .map((r) => ({
      name: r.name,
      action: r.action,
      ...(r.message !== undefined ? { message: r.message } : {}),
      ...(r.match.httpMethods ? { methods: new Set(r.match.httpMethods.map((m) => m.toUpperCase())) } : {}),
      ...(r.match.pathPattern !== undefined ? { pattern: RE2JS.compile(r.match.pathPattern) } : {}),
      ...(r.match.kubernetes ? { kube: r.match.kubernetes } : {}),
      ...(r.match.jsonBody
        ? {
            body: r.match.jsonBody.map((c) => ({
              path: c.field.split('.'),
              pattern: RE2JS.compile(c.pattern),
            })),
          }
        : {}),
    }));
  const headMatches = (r: CompiledRule, m: string, path: string, info?: KubeRequestInfo) =>
    !(r.methods && !r.methods.has(m)) &&
    !(r.pattern && !r.pattern.test(path)) &&
    !(r.kube && !(info && kubeMatches(r.kube, info)));
  return {
    decide(method, path, info, body) {
      const m = method.toUpperCase();
      for (const r of compiled) {
        if (!headMatches(r, m, path, info)) continue;
        if (r.body && !bodyMatches(r.body, body)) continue;
        return { action: r.action, rule: r.name, ...(r.message !== undefined ? { message: r.message } : {}) };
      }
      return { action: 'allow' };
    },
    needsBody(method, path, info) {
      const m = method.toUpperCase();
      for (const r of compiled) {
        if (!headMatches(r, m, path, info)) continue;
        // A rule before it that matches without looking at the body decides first.
        if (!r.body) return false;
        return true;
      }
      return false;
    },
  };
}

const STREAMING = new Set(['exec', 'attach', 'portforward']);

function anyOf(list: readonly string[] | undefined, value: string | undefined): boolean {
  return list === undefined || list.includes('*') || (value !== undefined && list.includes(value));
}

export function kubeMatches(
  m: NonNullable<Guardrail['match']['kubernetes']>,
  info: KubeRequestInfo,
): boolean {
  // Resource terms never match a non-resource request (/healthz, /version, discovery).
  const resourceTerms = m.apiGroups || m.resources || m.subresources || m.namespaces || m.names;
  if (resourceTerms && !info.isResourceRequest) return false;
  // exec, attach and port-forward as a WebSocket are GETs (RequestInfo verb get), as SPDY POSTs:
  // the apiserver authorizes the WebSocket form for create as well, and so does a rule here, so
  // `verbs: [create], subresources: [exec]` catches kubectl 1.31+ too.
  const streaming = info.verb === 'get' && info.resource === 'pods' && STREAMING.has(info.subresource ?? '');
  return (
    (anyOf(m.verbs, info.verb) || (streaming && anyOf(m.verbs, 'create'))) &&
    anyOf(m.apiGroups, info.apiGroup) &&
    anyOf(m.resources, info.resource) &&
    anyOf(m.subresources, info.subresource) &&
    anyOf(m.namespaces, info.namespace) &&
    anyOf(m.names, info.name)
  );
}

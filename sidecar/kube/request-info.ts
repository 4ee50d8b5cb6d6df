// What a Kubernetes API request does, in the apiserver's own terms: a port of
// k8s.io/apiserver/pkg/endpoints/request/requestinfo.go (RequestInfoFactory.NewRequestInfo) so a
// guardrail on "delete pods" sees exactly what the apiserver's authorizer will see.
import type { KubeRequestAttributes } from '../../recording/index.ts';

export interface KubeRequestInfo extends KubeRequestAttributes {
  isResourceRequest: boolean;
  /** The decoded path (non-resource requests: what RBAC's nonResourceURLs match). */
  path: string;
  /** dryRun=All: the apiserver will not persist the change. */
  dryRun: boolean;
}

const SPECIAL_VERBS = new Set(['proxy', 'watch']);
const NAMESPACE_SUBRESOURCES = new Set(['status', 'finalize']);
const METHOD_VERBS: Record<string, string> = {
  POST: 'create',
  GET: 'get',
  HEAD: 'get',
  PUT: 'update',
  PATCH: 'patch',
  DELETE: 'delete',
};

/** strconv.ParseBool's true values; anything else (or a parse error) is false. */
function parseBool(v: string | null): boolean {
  return v !== null && ['1', 't', 'T', 'true', 'TRUE', 'True'].includes(v);
}

/** metadata.name=<n> or metadata.name==<n> as the only requirement on that field. */
function exactName(fieldSelector: string): string | undefined {
  let name: string | undefined;
  for (const term of fieldSelector.split(',')) {
    const m = /^\s*metadata\.name\s*==?\s*(.*?)\s*$/.exec(term);
    if (m) {
      if (name !== undefined) return undefined;
      name = m[1];
    }
  }
  // path.IsValidPathSegmentName: no "/", "%", and not "." or "..".
  if (name === undefined || name === '' || name === '.' || name === '..' || /[/%]/.test(name))
    return undefined;
  return name;
}

/** `path` is already percent-decoded once (sidecar/http/path.ts); `query` is the raw query string. */
export function kubeRequestInfo(method: string, path: string, query: string): KubeRequestInfo {
  const params = new URLSearchParams(query);
  const dryRun = params.getAll('dryRun').length > 0;
  const nonResource: KubeRequestInfo = {
    isResourceRequest: false,
    path,
    verb: method.toLowerCase(),
    apiGroup: '',
    apiVersion: '',
    dryRun,
  };
  let parts = path.replace(/^\/+|\/+$/g, '').split('/');
  if (parts.length === 1 && parts[0] === '') parts = [];
  if (parts.length < 3) return nonResource;
  const prefix = parts[0]!;
  if (prefix !== 'api' && prefix !== 'apis') return nonResource;
  parts = parts.slice(1);
  let apiGroup = '';
  if (prefix === 'apis') {
    if (parts.length < 3) return nonResource;
    apiGroup = parts[0]!;
    parts = parts.slice(1);
  }
  const info: KubeRequestInfo = {
    isResourceRequest: true,
    path,
    verb: METHOD_VERBS[method.toUpperCase()] ?? '',
    apiGroup,
    apiVersion: parts[0]!,
    dryRun,
  };
  parts = parts.slice(1);
  if (SPECIAL_VERBS.has(parts[0]!)) {
    // The apiserver answers 404 here ("unable to determine kind and namespace"); so do we.
    if (parts.length < 2) return { ...info, verb: parts[0]!, resource: '' };
    info.verb = parts[0]!;
    parts = parts.slice(1);
  }
  if (parts[0] === 'namespaces') {
    if (parts.length > 1) {
      info.namespace = parts[1]!;
      if (parts.length > 2 && !NAMESPACE_SUBRESOURCES.has(parts[2]!)) parts = parts.slice(2);
    }
  }
  if (parts.length >= 3 && info.verb !== 'proxy') info.subresource = parts[2]!;
  if (parts.length >= 2) info.name = parts[1]!;
  if (parts.length >= 1) info.resource = parts[0]!;
  const fieldSelector = params.get('fieldSelector');
  const labelSelector = params.get('labelSelector');
  if (fieldSelector !== null) info.fieldSelector = fieldSelector;
  if (labelSelector !== null) info.labelSelector = labelSelector;
  if (!info.name && info.verb === 'get') {
    info.verb = parseBool(params.get('watch')) ? 'watch' : 'list';
    const n = fieldSelector !== null ? exactName(fieldSelector) : undefined;
    if (n !== undefined) info.name = n;
  }
  if (!info.name && info.verb === 'delete') info.verb = 'deletecollection';
  return info;
}

/** The attributes recorded with the request (no internal fields). */
export function recordedAttributes(info: KubeRequestInfo): KubeRequestAttributes {
  const { isResourceRequest: _r, path: _p, dryRun: _d, ...attrs } = info;
  return attrs;
}

// Secret values never reach the agent (or the recording) unless the policy allows them: `data`
// and `stringData` of every Secret in a response are replaced, keys kept, so `kubectl get secret`
// still shows which keys exist. Covers single objects, lists, Table rows with included objects,
// watch events, and the last-applied-configuration annotation `kubectl apply` stores (which holds
// the whole Secret as it was applied).

/** base64 of "[masked]": still valid base64 so typed clients decode it. */
export const MASKED_DATA = Buffer.from('[masked]').toString('base64');
export const MASKED_STRING = '[masked]';
const LAST_APPLIED = 'kubectl.kubernetes.io/last-applied-configuration';

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

function isObject(v: unknown): v is Record<string, Json> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function maskSecretObject(o: Record<string, Json>, paths: Set<string>, at: string): void {
  for (const field of ['data', 'stringData'] as const) {
    const d = o[field];
    if (!isObject(d)) continue;
    for (const k of Object.keys(d)) d[k] = field === 'data' ? MASKED_DATA : MASKED_STRING;
    paths.add(`${at}${field}`);
  }
  const meta = o.metadata;
  if (isObject(meta) && isObject(meta.annotations) && typeof meta.annotations[LAST_APPLIED] === 'string') {
    meta.annotations[LAST_APPLIED] = maskLastApplied(meta.annotations[LAST_APPLIED]);
    paths.add(`${at}metadata.annotations`);
  }
}

function maskLastApplied(text: string): string {
  try {
    const parsed = JSON.parse(text) as Json;
    if (isObject(parsed)) {
      maskSecretObject(parsed, new Set(), '');
      return JSON.stringify(parsed);
    }
  } catch {
    // Not JSON: nothing of it can be kept.
  }
  return MASKED_STRING;
}

/**
 * Masks Secrets anywhere in `doc` (in place). `secretsResource`: the request was for the secrets
 * resource, so list items (which carry no kind) are Secrets too. Returns the masked JSON paths.
 */
export function maskSecrets(doc: unknown, secretsResource: boolean): string[] {
  const paths = new Set<string>();
  const join = (at: string, k: string | number) =>
    typeof k === 'number' ? `${at}[${k}]` : at ? `${at}.${k}` : k;
  const walk = (v: unknown, at: string, secretContext: boolean): void => {
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) walk(v[i], join(at, i), secretContext);
      return;
    }
    if (!isObject(v)) return;
    const kind = v.kind;
    // In a secrets reply, a list item carries no kind and a Table row's object may be only its
    // metadata (PartialObjectMetadata), whose last-applied annotation still holds the whole Secret.
    const isSecret =
      kind === 'Secret' ||
      (secretContext && (kind === undefined || kind === 'PartialObjectMetadata') && isObject(v.metadata));
    if (isSecret) maskSecretObject(v, paths, at ? `${at}.` : '');
    for (const [k, child] of Object.entries(v)) {
      if (isSecret && (k === 'data' || k === 'stringData')) continue;
      // A list's items, a watch event's object, a Table row's object are Secrets in a secrets reply.
      const inherits =
        (secretContext ||
          kind === 'SecretList' ||
          (secretsResource && kind === 'PartialObjectMetadataList')) &&
        ['items', 'object', 'rows'].includes(k);
      walk(child, join(at, k), inherits);
    }
  };
  walk(doc, '', secretsResource);
  return [...paths];
}

/**
 * A request body sent to the secrets resource (create, update, patch) as the recording keeps it:
 * the top-level object is a Secret or a patch of one, so its data, stringData and last-applied
 * annotation are masked; a body that is not a JSON object (a JSON patch, YAML) keeps no text.
 */
export function maskSecretRequestText(text: string): { text?: string; masked: string[] } {
  try {
    const doc = JSON.parse(text) as unknown;
    if (isObject(doc)) {
      const paths = new Set<string>();
      maskSecretObject(doc, paths, '');
      return { text: JSON.stringify(doc), masked: [...paths] };
    }
  } catch {
    // Not JSON (or cut by the cap): nothing of it is kept.
  }
  return { masked: ['body'] };
}

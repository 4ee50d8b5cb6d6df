// Header handling of the HTTP gateways: what is stripped from the agent's request before it goes
// upstream, what is refused outright, and what the recording shows in place of credentials.
import type { IncomingHttpHeaders } from 'node:http';

/** RFC 9110 §7.6.1 hop-by-hop headers, plus the proxy ones; never forwarded in either direction. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authorization',
  'proxy-authenticate',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'host',
  'content-length',
  'expect',
  'http2-settings',
]);

/** Headers the agent could use to tell the upstream something about itself that is not true. */
const SPOOFABLE = /^(forwarded|x-forwarded-.*|x-real-ip|x-client-ip|true-client-ip|via)$/;

/** Method overrides make a POST act as a DELETE on many frameworks: the guard could not see it. */
const METHOD_OVERRIDE = /^(x-http-method-override|x-http-method|x-method-override)$/;

const SENSITIVE =
  /(^|-)(authorization|cookie|set-cookie|token|secret|password|passwd|api-?key|session|signature|credential)s?($|-)/;

export const REDACTED = '[redacted]';

export type Headers = Record<string, string | string[]>;

/** Headers named by the Connection header are hop-by-hop too. */
function connectionListed(headers: IncomingHttpHeaders): Set<string> {
  const out = new Set<string>();
  const c = headers.connection;
  if (typeof c === 'string') for (const n of c.split(',')) out.add(n.trim().toLowerCase());
  return out;
}

export interface RequestHeaderPlan {
  /** Headers to send upstream (before the upstream credential is added). */
  upstream: Headers;
  /** A header the sidecar refuses, with why. */
  refused?: string;
}

export interface RequestHeaderOptions {
  /** The header carrying the agent's token: removed. */
  identityHeader: string;
  /** Extra header names refused (lowercase prefix match), e.g. impersonate- for Kubernetes. */
  refusedPrefixes?: readonly string[];
}

/** The agent's request headers as forwarded: hop-by-hop, identity and spoofable headers removed. */
export function upstreamRequestHeaders(
  headers: IncomingHttpHeaders,
  opts: RequestHeaderOptions,
): RequestHeaderPlan {
  const listed = connectionListed(headers);
  const out: Headers = {};
  const identity = opts.identityHeader.toLowerCase();
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    if (METHOD_OVERRIDE.test(name))
      return { upstream: {}, refused: `header ${name} (a method override) is refused` };
    if (opts.refusedPrefixes?.some((p) => name.startsWith(p)))
      return { upstream: {}, refused: `header ${name} is refused` };
    if (HOP_BY_HOP.has(name) || listed.has(name) || name === identity || SPOOFABLE.test(name)) continue;
    out[name] = value;
  }
  return { upstream: out };
}

/** Response headers as returned to the agent: hop-by-hop removed (node sets its own framing). */
export function downstreamResponseHeaders(headers: Record<string, string | string[] | undefined>): Headers {
  const listed = new Set<string>();
  const c = headers.connection;
  if (typeof c === 'string') for (const n of c.split(',')) listed.add(n.trim().toLowerCase());
  const out: Headers = {};
  for (const [name, value] of Object.entries(headers)) {
    // Content-Length stays: the body is relayed byte for byte (scrubbing keeps lengths); the
    // callers that change a body set it again.
    if (value === undefined || (HOP_BY_HOP.has(name) && name !== 'content-length') || listed.has(name))
      continue;
    out[name] = value;
  }
  return out;
}

/** Headers for the recording: credentials, cookies and the named extra headers redacted. */
export function redactHeaders(
  headers: Record<string, string | string[] | undefined>,
  extra: readonly string[] = [],
): Headers {
  const also = new Set(extra.map((h) => h.toLowerCase()));
  const out: Headers = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    const n = name.toLowerCase();
    out[n] = SENSITIVE.test(n) || also.has(n) ? REDACTED : value;
  }
  return out;
}

/** The token in the identity header: "Bearer <t>" for authorization, the whole value otherwise. */
export function presentedToken(headers: IncomingHttpHeaders, identityHeader: string): string | undefined {
  const name = identityHeader.toLowerCase();
  const v = headers[name];
  if (typeof v !== 'string' || v === '') return undefined;
  if (name !== 'authorization') return v.trim();
  const m = /^Bearer\s+(\S+)\s*$/i.exec(v);
  return m ? m[1] : undefined;
}

// HTTPS to the test control plane, whose certs come from a CA made at start-up: a fetch that
// trusts that CA (and optionally presents a client cert), for jose's and openid-client's
// `customFetch` options and for probes before any Kubernetes client exists.
import { request } from 'node:https';

export interface TlsTrust {
  /** PEM of the CA(s) to trust instead of the system roots. */
  ca: string;
  /** Optional client certificate and key (PEM). */
  cert?: string;
  key?: string;
}

export interface SimpleResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

export interface SimpleRequest {
  method?: string;
  headers?: Record<string, string>;
  body?: string | Uint8Array;
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** One HTTPS request with the given trust; rejects on network errors, never on HTTP statuses. */
export function httpsRequest(
  url: string | URL,
  trust: TlsTrust,
  init: SimpleRequest = {},
): Promise<SimpleResponse> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: init.method ?? 'GET',
        headers: init.headers,
        ca: trust.ca,
        cert: trust.cert,
        key: trust.key,
        timeout: init.timeoutMs ?? 5000,
        signal: init.signal,
        // A fresh connection per request: probes must not ride on a socket to a stopped server.
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
        );
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`request to ${url} timed out`)));
    req.on('error', reject);
    req.end(init.body);
  });
}

const nullBodyStatuses = new Set([101, 103, 204, 205, 304]);

/** A WHATWG-fetch-compatible function that trusts `trust.ca` (for jose / openid-client customFetch). */
export function fetchTrusting(
  trust: TlsTrust,
): (input: string | URL | Request, init?: RequestInit) => Promise<Response> {
  return async (input, init = {}) => {
    const url = input instanceof Request ? input.url : input;
    const headers: Record<string, string> = {};
    new Headers(init.headers).forEach((value, name) => {
      headers[name] = value;
    });
    let body: string | Uint8Array | undefined;
    if (typeof init.body === 'string') body = init.body;
    else if (init.body instanceof URLSearchParams) body = init.body.toString();
    else if (init.body instanceof Uint8Array) body = init.body;
    else if (init.body != null)
      throw new TypeError('fetchTrusting supports string, URLSearchParams and bytes bodies');
    const res = await httpsRequest(url, trust, {
      method: init.method ?? 'GET',
      headers,
      body,
      signal: init.signal ?? undefined,
    });
    const responseHeaders = new Headers();
    for (const [name, value] of Object.entries(res.headers)) {
      if (Array.isArray(value)) for (const v of value) responseHeaders.append(name, v);
      else if (value !== undefined) responseHeaders.set(name, value);
    }
    return new Response(nullBodyStatuses.has(res.status) ? null : new Uint8Array(res.body), {
      status: res.status,
      headers: responseHeaders,
    });
  };
}

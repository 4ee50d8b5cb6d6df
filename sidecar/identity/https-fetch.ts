// A minimal fetch for GETs of small JSON documents over HTTPS with a private CA (the cluster's
// apiserver serves the service-account issuer's discovery and JWKS with the cluster CA). Node's
// global fetch cannot take a CA without the undici package; node:https can.
import { Agent, request } from 'node:https';

export type JsonFetch = (
  url: string,
  init?: { headers?: Headers | Record<string, string>; signal?: AbortSignal; method?: string },
) => Promise<Response>;

const MAX_BODY = 1024 * 1024;

export interface CaFetch {
  fetch: JsonFetch;
  close(): void;
}

export function createCaFetch(
  ca: string | Buffer,
  extraHeaders: () => Record<string, string> = () => ({}),
): CaFetch {
  const agent = new Agent({ ca, keepAlive: true, maxSockets: 4 });
  const fetchWithCa: JsonFetch = (url, init = {}) =>
    new Promise<Response>((resolve, reject) => {
      const target = new URL(url);
      if (target.protocol !== 'https:') {
        reject(new Error(`refusing ${target.protocol} for a CA-pinned fetch of ${target.origin}`));
        return;
      }
      const headers: Record<string, string> = { accept: 'application/json', ...extraHeaders() };
      new Headers(init.headers).forEach((value, key) => {
        headers[key] = value;
      });
      const req = request(
        target,
        { method: init.method ?? 'GET', agent, headers, signal: init.signal },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (chunk: Buffer) => {
            size += chunk.length;
            if (size > MAX_BODY) {
              req.destroy(new Error(`response from ${target.origin} larger than ${MAX_BODY} bytes`));
              return;
            }
            chunks.push(chunk);
          });
          res.on('end', () => {
            const responseHeaders = new Headers();
            for (const [key, value] of Object.entries(res.headers)) {
              if (typeof value === 'string') responseHeaders.set(key, value);
              else if (Array.isArray(value)) for (const v of value) responseHeaders.append(key, v);
            }
            const status = res.statusCode ?? 500;
            const body = [101, 204, 205, 304].includes(status) ? null : Buffer.concat(chunks);
            resolve(new Response(body, { status, headers: responseHeaders }));
          });
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end();
    });
  return { fetch: fetchWithCa, close: () => agent.destroy() };
}

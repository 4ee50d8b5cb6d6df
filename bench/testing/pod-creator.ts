// Pod creates over keep-alive connections with a plain JSON body: the client's own cost stays small
// and equal across runs (client-node's per-request work would otherwise dominate one create).
import { Agent, request } from 'node:https';
import type { KubeConfig, V1Pod } from '@kubernetes/client-node';

export interface PodCreator {
  create(namespace: string, body: V1Pod): Promise<V1Pod>;
  close(): void;
}

/** Up to `concurrency` creates in flight against the apiserver at `server` (kc's credentials). */
export async function podCreator(kc: KubeConfig, server: string, concurrency: number): Promise<PodCreator> {
  const options: { ca?: Buffer; cert?: Buffer; key?: Buffer } = {};
  await kc.applyToHTTPSOptions(options);
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency, ...options });
  const url = new URL(server);
  const create = (namespace: string, body: V1Pod): Promise<V1Pod> =>
    new Promise((resolve, reject) => {
      const payload = JSON.stringify(body);
      const req = request(
        {
          agent,
          host: url.hostname,
          port: url.port,
          method: 'POST',
          path: `/api/v1/namespaces/${namespace}/pods`,
          headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            if (res.statusCode !== 201) reject(new Error(`create pod: ${res.statusCode} ${text}`));
            else resolve(JSON.parse(text) as V1Pod);
          });
        },
      );
      req.on('error', reject);
      req.end(payload);
    });
  return { create, close: () => agent.destroy() };
}

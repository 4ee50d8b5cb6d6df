// /healthz (the process is alive), /readyz (a standby is ready; a leader once its caches are
// synced) and /metrics (Prometheus).
import Fastify, { type FastifyInstance } from 'fastify';
import type { OperatorMetrics } from './metrics.ts';

export interface HealthSource {
  ready(): { ready: boolean; detail: string };
}

export async function startHealthServer(options: {
  host: string;
  port: number;
  metrics: OperatorMetrics;
  health: HealthSource;
}): Promise<{ server: FastifyInstance; url: string }> {
  const server = Fastify({ logger: false });
  server.get('/healthz', async () => 'ok\n');
  server.get('/readyz', async (_request, reply) => {
    const { ready, detail } = options.health.ready();
    return reply
      .code(ready ? 200 : 503)
      .type('text/plain')
      .send(`${detail}\n`);
  });
  server.get('/metrics', async (_request, reply) =>
    reply.type(options.metrics.registry.contentType).send(await options.metrics.registry.metrics()),
  );
  await server.listen({ host: options.host, port: options.port });
  const address = server.server.address();
  const port = typeof address === 'object' && address ? address.port : options.port;
  const host = options.host === '0.0.0.0' || options.host === '::' ? '127.0.0.1' : options.host;
  return { server, url: `http://${host.includes(':') ? `[${host}]` : host}:${port}` };
}

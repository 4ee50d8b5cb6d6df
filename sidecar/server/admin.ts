// The admin endpoint: liveness, readiness (listeners bound and recorder open) and Prometheus metrics.
import Fastify, { type FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';

export interface AdminState {
  ready(): { ready: boolean; reason?: string };
  beforeScrape?(): void;
}

export async function startAdminServer(
  host: string,
  port: number,
  registry: Registry,
  state: AdminState,
): Promise<FastifyInstance> {
  const app = Fastify({ logger: false });
  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_req, reply) => {
    const r = state.ready();
    return reply
      .code(r.ready ? 200 : 503)
      .send(r.ready ? { status: 'ready' } : { status: 'not ready', reason: r.reason });
  });
  app.get('/metrics', async (_req, reply) => {
    state.beforeScrape?.();
    return reply.header('content-type', registry.contentType).send(await registry.metrics());
  });
  await app.listen({ host, port });
  return app;
}

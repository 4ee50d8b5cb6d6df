// The HTTPS admission server: one route per webhook, each turning an AdmissionReview into a
// Decision. Any error answers "not allowed" (fail closed) with the reason, never a 500 without body.
import type { Server } from 'node:https';
import Fastify, { type FastifyInstance, LogController } from 'fastify';
import { Counter, Histogram, Registry } from 'prom-client';
import {
  type AdmissionRequest,
  type Decision,
  deny,
  parseAdmissionReview,
  reviewOf,
  toResponse,
} from './admission.ts';
import type { ClusterReader } from './cluster.ts';
import type { WebhookConfig } from './config.ts';
import { WEBHOOK_PATHS } from './constants.ts';
import { validateOperatorChild } from './handlers/operator-children.ts';
import { mutatePod, validatePod } from './handlers/pods.ts';
import { mutateSessionApproval, validateSessionApproval } from './handlers/session-approvals.ts';
import { validateSessionPolicy } from './handlers/session-policies.ts';
import { mutateWorkload, validateWorkload } from './handlers/workloads.ts';
import type { RendererLookup } from './renderer-registry.ts';
import type { TlsMaterial } from './tls.ts';

export interface WebhookServerOptions {
  config: WebhookConfig;
  /** Reads for admission; may be a cache (see cache.ts). */
  cluster: ClusterReader;
  /** The live API when cluster is a cache. */
  liveCluster?: ClusterReader;
  tls: TlsMaterial;
  dnsResolvers?: () => readonly string[];
  /** Other replicas' published renderings (rollouts): see handlers/pods.ts validatePod. */
  renderers?: RendererLookup;
  now?: () => Date;
  logger?: boolean | { level: string };
}

export interface WebhookServer {
  app: FastifyInstance<Server>;
  /** Swaps the serving certificate for new connections; a bad pair is refused and the old kept. */
  setTls(material: TlsMaterial): void;
  /**
   * Before a stop: keeps answering, but every response closes its connection (`Connection: close`)
   * and /readyz fails, so clients reconnect elsewhere instead of reusing a connection that the stop
   * would reset mid-request. Resolves once no request came for `quietMs` (or after `maxMs`).
   */
  drain(options?: { quietMs?: number; maxMs?: number }): Promise<void>;
  registry: Registry;
}

type Handler = (req: AdmissionRequest) => Promise<Decision> | Decision;

export async function buildWebhookServer(options: WebhookServerOptions): Promise<WebhookServer> {
  const { config, cluster } = options;
  const now = options.now ?? (() => new Date());
  const dnsResolvers = options.dnsResolvers ?? (() => config.dns.resolvers);
  const app = Fastify({
    https: { key: options.tls.key, cert: options.tls.cert },
    logger: options.logger ?? false,
    // Not Fastify's two lines per request ("incoming request", "request completed"): every admission
    // logs one line of its own below, with what was decided and how long it took.
    logController: new LogController({ disableRequestLogging: true }),
    // A pod with a large env still fits; the apiserver's own request limit is 3 MiB.
    bodyLimit: 8 * 1024 * 1024,
  }) as unknown as FastifyInstance<Server>;
  const registry = new Registry();
  const duration = new Histogram({
    name: 'chaperone_webhook_admission_duration_seconds',
    help: 'Time from receiving an AdmissionReview request to having sent the response (body parsing and serialization included), by webhook path and outcome.',
    labelNames: ['path', 'allowed'],
    // Fine below 5 ms, where an admission on a machine that keeps up falls (bench/webhook.bench.ts).
    buckets: [
      0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
      1, 2.5,
    ],
    registers: [registry],
  });
  const decisionTime = new Histogram({
    name: 'chaperone_webhook_decision_duration_seconds',
    help: 'Time the handler takes to decide (lookups, checks, patch), by webhook path.',
    labelNames: ['path'],
    buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    registers: [registry],
  });
  // A handshake per admission would cost both sides far more than deciding: watch that connections are reused.
  const tlsConnections = new Counter({
    name: 'chaperone_webhook_tls_connections_total',
    help: 'TLS connections accepted (each one a handshake); far fewer than admission requests when clients keep connections alive.',
    registers: [registry],
  });
  app.server.on('secureConnection', () => tlsConnections.inc());

  const podDeps = {
    cluster,
    config,
    dnsResolvers,
    now,
    ...(options.liveCluster ? { liveCluster: options.liveCluster } : {}),
    ...(options.renderers ? { renderers: options.renderers } : {}),
  };
  const routes: Record<string, Handler> = {
    [WEBHOOK_PATHS.mutatePods]: (r) => mutatePod(r, podDeps),
    [WEBHOOK_PATHS.validatePods]: (r) => validatePod(r, podDeps),
    [WEBHOOK_PATHS.validateOperatorChildren]: (r) => validateOperatorChild(r, config),
    [WEBHOOK_PATHS.validateSessionPolicies]: (r) =>
      validateSessionPolicy(r, { cluster, adminPort: config.adminPort }),
    [WEBHOOK_PATHS.mutateSessionApprovals]: (r) => mutateSessionApproval(r, now),
    // Reviewers are read live: a cached, older reviewer list must not let anyone decide.
    [WEBHOOK_PATHS.validateSessionApprovals]: (r) =>
      validateSessionApproval(r, { cluster: options.liveCluster ?? cluster, now }),
    [WEBHOOK_PATHS.mutateWorkloads]: (r) => mutateWorkload(r, config.templateControllers),
    [WEBHOOK_PATHS.validateWorkloads]: (r) => validateWorkload(r, config.templateControllers),
  };

  for (const [path, handler] of Object.entries(routes)) {
    app.post(path, async (request, reply) => {
      const outcome = (allowed: boolean) =>
        reply.raw.once('finish', () =>
          duration.observe({ path, allowed: String(allowed) }, reply.elapsedTime / 1000),
        );
      let req: AdmissionRequest;
      try {
        req = parseAdmissionReview(request.body);
      } catch (error) {
        outcome(false);
        const message = error instanceof Error ? error.message : String(error);
        request.log.warn({ path, reason: message }, 'not an AdmissionReview');
        return reply.code(400).send({ error: message });
      }
      let decision: Decision;
      const decided = decisionTime.startTimer({ path });
      try {
        decision = await handler(req);
      } catch (error) {
        request.log.error({ err: error, uid: req.uid }, 'admission handler failed');
        decision = deny(
          `chaperone webhook error: ${error instanceof Error ? error.message : String(error)}`,
          500,
        );
      }
      const seconds = decided();
      outcome(decision.allowed);
      request.log.info(
        {
          uid: req.uid,
          kind: req.kind.kind,
          namespace: req.namespace,
          name: req.name,
          operation: req.operation,
          subResource: req.subResource,
          user: req.userInfo.username,
          allowed: decision.allowed,
          decideMs: Math.round(seconds * 1e5) / 100,
          ...(decision.allowed ? { patchOps: decision.patch?.length ?? 0 } : { reason: decision.message }),
        },
        'admission',
      );
      if (decision.allowed && decision.auditAnnotations) {
        request.log.warn(
          {
            uid: req.uid,
            user: req.userInfo.username,
            groups: req.userInfo.groups,
            ...decision.auditAnnotations,
          },
          'break-glass admission',
        );
      }
      return reply.send(reviewOf(toResponse(req.uid, decision)));
    });
  }
  let draining = false;
  let lastRequest = 0;
  app.addHook('onRequest', async () => {
    lastRequest = Date.now();
  });
  app.addHook('onSend', async (_request, reply) => {
    if (draining) reply.header('connection', 'close');
  });
  app.get('/healthz', async () => 'ok');
  app.get('/readyz', async (_request, reply) => (draining ? reply.code(503).send('draining') : 'ok'));
  app.get('/metrics', async (_request, reply) => {
    reply.header('content-type', registry.contentType);
    return registry.metrics();
  });

  return {
    app,
    registry,
    async drain({ quietMs = 1000, maxMs = 15_000 } = {}) {
      draining = true;
      const deadline = Date.now() + maxMs;
      lastRequest = Date.now();
      while (Date.now() < deadline && Date.now() - lastRequest < quietMs) {
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    },
    setTls(material) {
      try {
        app.server.setSecureContext({ key: material.key, cert: material.cert });
        app.log.info('serving certificate swapped');
      } catch (error) {
        app.log.error({ err: error }, 'new serving certificate refused; keeping the current one');
      }
    },
  };
}

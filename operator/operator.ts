// Wires the operator together: API clients, health/metrics server, leader election, and the
// controllers that only the leader runs. Controllers are built fresh each time leadership is won,
// so a former leader never acts on stale caches.
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import {
  AdmissionregistrationV1Api,
  CoordinationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  type KubeConfig,
  KubernetesObjectApi,
  NetworkingV1Api,
} from '@kubernetes/client-node';
import type { FastifyInstance } from 'fastify';
import { type Logger, pino } from 'pino';
import type { OperatorConfig } from './config.ts';
import { SessionPolicyController } from './controllers/session-policy.ts';
import { WebhookCertController } from './controllers/webhook-certs.ts';
import { EventRecorder } from './kube/events.ts';
import { LeaderElector } from './leader/lease.ts';
import { OperatorMetrics } from './metrics.ts';
import { startHealthServer } from './server.ts';
import { StorageBootstrapper } from './storage/bootstrap.ts';

export interface OperatorOptions {
  config: OperatorConfig;
  kubeConfig: KubeConfig;
  logger?: Logger;
}

export interface RunningOperator {
  identity: string;
  /** Base URL of /healthz, /readyz and /metrics. */
  url: string;
  metrics: OperatorMetrics;
  isLeader(): boolean;
  /** The running SessionPolicy controller while leading (for tests). */
  policyController(): SessionPolicyController | undefined;
  stop(): Promise<void>;
}

interface Controllers {
  policies: SessionPolicyController;
  certs: WebhookCertController | undefined;
}

export async function startOperator(options: OperatorOptions): Promise<RunningOperator> {
  const { config, kubeConfig } = options;
  const identity =
    config.identity ?? `${process.env.POD_NAME ?? hostname()}-${randomBytes(3).toString('hex')}`;
  const logger = (options.logger ?? pino({ level: config.logLevel })).child({ identity });
  const metrics = new OperatorMetrics();
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const events = new EventRecorder(core, { component: 'chaperone-operator', instance: identity, logger });
  const storage = config.storage.bootstrap
    ? new StorageBootstrapper({ logger, checkSeconds: config.storage.checkSeconds })
    : undefined;

  let controllers: Controllers | undefined;
  let starting: Promise<void> | undefined;
  let leading = false;

  const startControllers = () => {
    const deps = {
      kubeConfig,
      core,
      config,
      logger,
      metrics,
      events,
      objects: KubernetesObjectApi.makeApiClient(kubeConfig),
    };
    const current: Controllers = {
      policies: new SessionPolicyController({
        ...deps,
        networking: kubeConfig.makeApiClient(NetworkingV1Api),
        custom: kubeConfig.makeApiClient(CustomObjectsApi),
        ...(storage ? { storage } : {}),
      }),
      certs:
        config.certificates.mode === 'operator'
          ? new WebhookCertController({
              ...deps,
              admission: kubeConfig.makeApiClient(AdmissionregistrationV1Api),
            })
          : undefined,
    };
    controllers = current;
    starting = Promise.all([current.policies.start(), current.certs?.start()]).then(() => {
      logger.info('controllers started');
    });
  };
  const stopControllers = async () => {
    const current = controllers;
    controllers = undefined;
    if (!current) return;
    await Promise.all([current.policies.stop(), current.certs?.stop()]);
    await starting?.catch(() => undefined);
    logger.info('controllers stopped');
  };

  const elector = config.leaderElection.enabled
    ? new LeaderElector({
        api: kubeConfig.makeApiClient(CoordinationV1Api),
        namespace: config.systemNamespace,
        name: config.leaderElection.leaseName,
        identity,
        leaseDurationSeconds: config.leaderElection.leaseDurationSeconds,
        renewDeadlineSeconds: config.leaderElection.renewDeadlineSeconds,
        retryPeriodSeconds: config.leaderElection.retryPeriodSeconds,
        logger,
        // Not awaited: the elector must keep renewing while the caches fill.
        onStartedLeading: () => {
          leading = true;
          metrics.leader.set(1);
          startControllers();
        },
        onStoppedLeading: async () => {
          leading = false;
          metrics.leader.set(0);
          await stopControllers();
        },
      })
    : undefined;

  let server: FastifyInstance;
  let url: string;
  try {
    ({ server, url } = await startHealthServer({
      host: config.server.host,
      port: config.server.port,
      metrics,
      health: {
        ready: () => {
          if (!controllers) return { ready: true, detail: 'standby' };
          const synced = controllers.policies.synced && (controllers.certs?.synced ?? true);
          return { ready: synced, detail: synced ? 'leader, caches synced' : 'leader, caches syncing' };
        },
      },
    }));
  } catch (error) {
    throw new Error(
      `cannot start the health server on ${config.server.host}:${config.server.port}: ${String(error)}`,
    );
  }
  logger.info({ url }, 'health server listening');

  if (elector) elector.start();
  else {
    leading = true;
    metrics.leader.set(1);
    startControllers();
  }

  return {
    identity,
    url,
    metrics,
    isLeader: () => leading,
    policyController: () => controllers?.policies,
    async stop() {
      if (elector) await elector.stop();
      else await stopControllers();
      await server.close();
      logger.info('operator stopped');
    },
  };
}

// The sidecar process's life: open the recorder, bind one listener per target, apply config
// reloads, and shut down gracefully (stop accepting, let sessions finish, terminate the rest, close
// the recorder so every segment is sealed and uploaded).
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { SidecarConfig, SidecarTarget } from '../config/index.ts';
import { buildHttpRuntime } from '../http/context.ts';
import { HttpGateway } from '../http/gateway.ts';
import { CancelRegistry, type GatewayServices, type PostgresLimits } from '../postgres/context.ts';
import { PostgresGateway } from '../postgres/gateway.ts';
import { buildSshRuntime, SshGateway } from '../ssh/index.ts';
import { startAdminServer } from './admin.ts';
import { createMetrics, type SidecarMetrics } from './metrics.ts';
import type { PodIdentity, Recorder } from './modules.ts';
import {
  buildPostgresRuntime,
  buildShared,
  openConfiguredRecorder,
  recordingDurability,
  type SharedRuntime,
} from './runtime.ts';

/** Protocols this build serves. */
const SERVED = new Set(['postgres', 'ssh', 'http', 'kubernetes']);

export interface SidecarOptions {
  config: SidecarConfig;
  logger: Logger;
  pod: PodIdentity;
  version: string;
  limits: PostgresLimits;
  /** Admin server bind address (0.0.0.0 by default so the kubelet can probe it). */
  adminHost?: string;
  /** Tests: skip the admin server. */
  noAdmin?: boolean;
  /** Tests: a recorder opened by the caller. */
  recorder?: Recorder;
  /** Environment for the parts configured from it (KUBECONFIG of the approvals backend); default process.env. */
  env?: NodeJS.ProcessEnv;
}

export class Sidecar {
  private config: SidecarConfig;
  private shared: SharedRuntime;
  private readonly gateways = new Map<string, PostgresGateway | SshGateway | HttpGateway>();
  private readonly services: GatewayServices;
  readonly metrics: SidecarMetrics;
  private admin: FastifyInstance | undefined;
  private shuttingDown: Promise<void> | undefined;
  private readonly opts: SidecarOptions;
  private readonly recorder: Recorder;
  private applying = Promise.resolve();

  private constructor(
    opts: SidecarOptions,
    recorder: Recorder,
    shared: SharedRuntime,
    metrics: SidecarMetrics,
  ) {
    this.opts = opts;
    this.config = opts.config;
    this.recorder = recorder;
    this.shared = shared;
    this.metrics = metrics;
    this.services = {
      recorder,
      pod: opts.pod,
      logger: opts.logger,
      metrics,
      cancels: new CancelRegistry(),
      sidecarVersion: opts.version,
    };
  }

  static async start(opts: SidecarOptions): Promise<Sidecar> {
    const metrics = createMetrics();
    const recorder =
      opts.recorder ??
      (await openConfiguredRecorder(opts.config, opts.logger, opts.limits.maxPendingAppends));
    let shared: SharedRuntime;
    try {
      shared = buildShared(opts.config, opts.pod, opts.logger, opts.env);
    } catch (err) {
      if (!opts.recorder) await recorder.close({ deadlineMs: 5000 }).catch(() => undefined);
      throw err;
    }
    const sidecar = new Sidecar(opts, recorder, shared, metrics);
    try {
      if (!opts.noAdmin) {
        sidecar.admin = await startAdminServer(
          opts.adminHost ?? '0.0.0.0',
          opts.config.adminPort,
          metrics.registry,
          {
            ready: () => sidecar.readiness(),
            beforeScrape: () => metrics.setSpoolBytes(recorder.status().spooledBytes),
          },
        );
      }
      await sidecar.reconcileTargets(opts.config);
    } catch (err) {
      await sidecar.shutdown('startup failed').catch(() => undefined);
      throw err;
    }
    metrics.setConfigGeneration(opts.config.policy.generation ?? 0);
    opts.logger.info(
      { policy: opts.config.policy, targets: [...sidecar.gateways.keys()], version: opts.version },
      'sidecar started',
    );
    return sidecar;
  }

  readiness(): { ready: boolean; reason?: string } {
    if (this.shuttingDown) return { ready: false, reason: 'shutting down' };
    for (const g of this.gateways.values())
      if (!g.isListening) return { ready: false, reason: `listener ${g.target} not bound` };
    if (!this.recorder.status().storeHealthy)
      return { ready: true, reason: 'recording store unhealthy; spooling' };
    return { ready: true };
  }

  /** The bound port of a target's listener. */
  port(target: string): number | undefined {
    return this.gateways.get(target)?.port;
  }

  get activeSessions(): number {
    let n = 0;
    for (const g of this.gateways.values()) n += g.activeSessions;
    return n;
  }

  private async reconcileTargets(config: SidecarConfig): Promise<void> {
    const wanted = new Map<string, SidecarTarget>();
    for (const t of config.targets) {
      if (!SERVED.has(t.protocol)) {
        this.opts.logger.warn(
          { target: t.name, protocol: t.protocol },
          'protocol not served by this build; target skipped',
        );
        continue;
      }
      wanted.set(t.name, t);
    }
    for (const [name, gateway] of this.gateways) {
      const t = wanted.get(name);
      if (!t || t.listenPort !== gateway.listenPort || config.listenHost !== this.config.listenHost) {
        // Removed or moved: stop accepting; its sessions finish on their own.
        this.gateways.delete(name);
        gateway.stopAccepting();
        this.opts.logger.info({ target: name }, 'listener removed');
      }
    }
    for (const [name, target] of wanted) {
      let existing = this.gateways.get(name);
      const kind =
        target.protocol === 'ssh'
          ? SshGateway
          : target.protocol === 'postgres'
            ? PostgresGateway
            : HttpGateway;
      if (existing && !(existing instanceof kind)) {
        await existing.stopAccepting();
        this.gateways.delete(name);
        existing = undefined;
      }
      let gateway: PostgresGateway | SshGateway | HttpGateway;
      if (target.protocol === 'ssh') {
        let runtime: Awaited<ReturnType<typeof buildSshRuntime>>;
        try {
          runtime = await buildSshRuntime(config, target, this.shared);
        } catch (err) {
          // No pinned upstream key or no host key: this target is not served (fail closed); the
          // others are.
          this.opts.logger.error({ target: name, err: (err as Error).message }, 'ssh target not served');
          if (existing) {
            await existing.stopAccepting();
            this.gateways.delete(name);
          }
          continue;
        }
        if (existing instanceof SshGateway) {
          existing.update(runtime);
          continue;
        }
        gateway = new SshGateway(runtime, this.services);
      } else if (target.protocol === 'http' || target.protocol === 'kubernetes') {
        const strict = recordingDurability(config.recording) === 'strict';
        const runtime = await buildHttpRuntime(config, target, this.shared, strict);
        if (existing instanceof HttpGateway) {
          existing.update(runtime);
          continue;
        }
        gateway = new HttpGateway(runtime, this.services);
      } else {
        const runtime = await buildPostgresRuntime(config, target, this.shared, this.opts.limits);
        if (existing instanceof PostgresGateway) {
          existing.update(runtime);
          continue;
        }
        gateway = new PostgresGateway(runtime, this.services);
      }
      await gateway.listen(config.listenHost);
      this.gateways.set(name, gateway);
    }
  }

  /** Applies a new config: rules and targets change, the recorder stays (its settings need a restart). */
  applyConfig(config: SidecarConfig): Promise<void> {
    this.applying = this.applying.then(async () => {
      if (this.shuttingDown) return;
      const log = this.opts.logger;
      if (JSON.stringify(config.recording) !== JSON.stringify(this.config.recording)) {
        log.warn('recording settings changed; they apply after a restart');
      }
      const previous = this.shared;
      try {
        this.shared = buildShared(config, this.opts.pod, log, this.opts.env);
        await this.reconcileTargets(config);
      } catch (err) {
        this.shared = previous;
        this.metrics.configReload('rejected');
        log.error({ err }, 'config reload failed; keeping the previous config');
        return;
      }
      this.config = config;
      this.metrics.configReload('applied');
      this.metrics.setConfigGeneration(config.policy.generation ?? 0);
      log.info({ policy: config.policy }, 'config reloaded');
      // Sessions mid-login may still hold the old verifier for a moment.
      setTimeout(() => {
        previous.verifier.close();
        previous.alerts.close().catch(() => undefined);
      }, 30_000).unref();
    });
    return this.applying;
  }

  shutdown(reason = 'sidecar shutting down'): Promise<void> {
    this.shuttingDown ??= (async () => {
      const log = this.opts.logger;
      const graceMs = this.config.shutdownGraceSeconds * 1000;
      log.info({ sessions: this.activeSessions, graceMs }, 'shutting down');
      await Promise.all([...this.gateways.values()].map((g) => g.drain(graceMs, reason)));
      try {
        await this.recorder.close({ deadlineMs: Math.max(5000, graceMs) });
      } catch (err) {
        log.error({ err }, 'recorder close failed');
      }
      this.shared.verifier.close();
      await this.shared.alerts.close().catch(() => undefined);
      await this.admin?.close();
      log.info('shutdown complete');
    })();
    return this.shuttingDown;
  }
}

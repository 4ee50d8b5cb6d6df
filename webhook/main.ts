#!/usr/bin/env node
// chaperone-webhook: `node webhook/main.ts --config webhook.yaml` (or the config as JSON in
// CHAPERONE_WEBHOOK_CONFIG). Same process in-cluster and as a local process next to a test apiserver.
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { KubeConfig } from '@kubernetes/client-node';
import { parse as parseYaml } from 'yaml';
import { type CachedClusterReader, cachedClusterReader } from './cache.ts';
import { apiClusterReader, discoverDnsResolvers } from './cluster.ts';
import { parseWebhookConfig, type WebhookConfig } from './config.ts';
import {
  kubeRendererRegistry,
  type RendererRegistry,
  type RendererRegistryOptions,
} from './renderer-registry.ts';
import { renderingOf } from './rendering.ts';
import { buildWebhookServer, type WebhookServer } from './server.ts';
import { type TlsSourceHandle, watchFileTls, watchSecretTls } from './tls.ts';

export const CONFIG_ENV = 'CHAPERONE_WEBHOOK_CONFIG';

export async function loadConfig(argv: string[] = process.argv.slice(2)): Promise<WebhookConfig> {
  const { values } = parseArgs({ args: argv, options: { config: { type: 'string', short: 'c' } } });
  if (values.config) return parseWebhookConfig(parseYaml(await readFile(values.config, 'utf8')));
  const inline = process.env[CONFIG_ENV];
  if (inline) return parseWebhookConfig(JSON.parse(inline));
  throw new Error(`no config: pass --config <file> or set ${CONFIG_ENV}`);
}

export function kubeConfigOf(config: WebhookConfig): KubeConfig {
  const kc = new KubeConfig();
  if (config.kubeconfig) kc.loadFromFile(config.kubeconfig);
  else kc.loadFromDefault();
  return kc;
}

export interface RunningWebhook {
  server: WebhookServer;
  url: string;
  stop(): Promise<void>;
}

/** Loads TLS, discovers DNS resolvers, listens; resolves once the server accepts connections. */
export async function startWebhook(
  config: WebhookConfig,
  kc: KubeConfig = kubeConfigOf(config),
  registryOptions: RendererRegistryOptions = {},
): Promise<RunningWebhook> {
  const log = (msg: string) => process.stderr.write(`chaperone-webhook: ${msg}\n`);
  let server: WebhookServer | undefined;
  let cache: CachedClusterReader | undefined;
  let registry: RendererRegistry | undefined;
  const onTls = (m: { cert: string; key: string }) => server?.setTls(m);
  const tls: TlsSourceHandle =
    config.tls.source === 'secret'
      ? watchSecretTls(kc, config.tls.namespace ?? config.systemNamespace, config.tls.name, onTls, log)
      : watchFileTls(config.tls.certFile, config.tls.keyFile, config.tls.pollSeconds, onTls, log);
  try {
    let resolvers = [...config.dns.resolvers];
    if (config.dns.discoverService) {
      const found = await discoverDnsResolvers(kc, config.dns.discoverService);
      if (found.length === 0) log(`DNS Service ${config.dns.discoverService} not found`);
      resolvers = [...new Set([...resolvers, ...found])];
    }
    if (resolvers.length === 0) {
      log('no DNS resolvers known: pods in opted-in namespaces will be refused until dns.resolvers is set');
    }
    const live = apiClusterReader(kc);
    if (config.informerCache) {
      cache = cachedClusterReader(kc, live, log);
      await cache.ready;
    }
    // Published before this replica listens (so before it is ready): during a rollout, replicas with
    // another config accept what this one renders (handlers/pods.ts validatePod).
    registry = kubeRendererRegistry(kc, config.systemNamespace, renderingOf(config, resolvers), {
      log,
      ...registryOptions,
    });
    await registry.ready;
    log(`rendering config ${registry.hash} published`);
    const material = await tls.initial;
    server = await buildWebhookServer({
      config,
      cluster: cache ?? live,
      liveCluster: live,
      renderers: registry,
      tls: material,
      dnsResolvers: () => resolvers,
      logger: { level: config.logLevel },
    });
    const url = await server.app.listen({ host: config.listen.host, port: config.listen.port });
    const running = server;
    const published = registry;
    return {
      server: running,
      url,
      async stop() {
        published.stop();
        tls.stop();
        await cache?.stop();
        await running.app.close();
      },
    };
  } catch (error) {
    registry?.stop();
    tls.stop();
    await cache?.stop();
    throw error;
  }
}

if (import.meta.main) {
  try {
    const webhook = await startWebhook(await loadConfig());
    for (const signal of ['SIGTERM', 'SIGINT'] as const) {
      // Drain first: the apiserver keeps connections to a replica (through the Service, after it
      // left the endpoints); closing them with a request in flight would fail that admission.
      process.once(signal, () => {
        void webhook.server
          .drain()
          .then(() => webhook.stop())
          .then(() => process.exit(0));
      });
    }
  } catch (error) {
    process.stderr.write(`chaperone-webhook: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  }
}

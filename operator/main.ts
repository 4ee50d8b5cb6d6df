#!/usr/bin/env node
// chaperone-operator: reconciles SessionPolicies, keeps the webhook's certificates, bootstraps
// recording buckets. Configuration: a YAML/JSON file (--config) validated by operatorConfigSchema.
import { readFile } from 'node:fs/promises';
import { KubeConfig } from '@kubernetes/client-node';
import { Command } from 'commander';
import { pino } from 'pino';
import { parse } from 'yaml';
import { parseOperatorConfig } from './config.ts';
import { startOperator } from './operator.ts';

const program = new Command('chaperone-operator')
  .description('Reconciles chaperone SessionPolicies into sidecar config, NetworkPolicies and storage.')
  .option('--config <file>', 'operator configuration (YAML or JSON)')
  .option('--kubeconfig <file>', 'kubeconfig to use (default: in-cluster or $KUBECONFIG)')
  .option('--identity <name>', 'identity in the leader Lease')
  .parse();

const options = program.opts<{ config?: string; kubeconfig?: string; identity?: string }>();

async function main(): Promise<void> {
  const raw = options.config ? parse(await readFile(options.config, 'utf8')) : {};
  const config = parseOperatorConfig({ ...raw, ...(options.identity ? { identity: options.identity } : {}) });
  const logger = pino({ level: config.logLevel });
  const kubeConfig = new KubeConfig();
  if (options.kubeconfig) kubeConfig.loadFromFile(options.kubeconfig);
  else kubeConfig.loadFromDefault();

  const operator = await startOperator({ config, kubeConfig, logger });
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal }, 'shutting down');
    operator.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error({ err: String(error) }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

main().catch((error: unknown) => {
  process.stderr.write(`chaperone-operator: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});

#!/usr/bin/env node
// The chaperone sidecar process: `node sidecar/main.ts --config sidecar.yaml` (or CHAPERONE_CONFIG).
import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { pino } from 'pino';
import { SIDECAR_PATHS } from './config/index.ts';
import { configPathFrom, loadConfig, watchConfig } from './server/config.ts';
import { podIdentityFromEnv } from './server/modules.ts';
import { limitsFromEnv } from './server/runtime.ts';
import { Sidecar } from './server/sidecar.ts';

const version = (
  JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
).version;

async function main(): Promise<void> {
  const program = new Command()
    .name('chaperone-sidecar')
    .description('Recording gateway between an agent and its upstreams')
    .option(
      '-c, --config <path>',
      'config file (JSON or YAML); default $CHAPERONE_CONFIG or the mounted ConfigMap',
    )
    .version(version)
    .parse();
  const logger = pino({
    level: process.env.CHAPERONE_LOG_LEVEL ?? 'info',
    base: { component: 'sidecar', version },
  });
  const path =
    configPathFrom(program.opts<{ config?: string }>().config, process.env) ?? SIDECAR_PATHS.configFile;
  const { config, digest } = await loadConfig(path);
  const sidecar = await Sidecar.start({
    config,
    logger,
    pod: podIdentityFromEnv(process.env),
    version,
    limits: limitsFromEnv(process.env),
    adminHost: process.env.CHAPERONE_ADMIN_HOST,
  });
  const watcher = watchConfig(
    path,
    digest,
    {
      onChange: (next) => sidecar.applyConfig(next),
      onInvalid: (err) => {
        sidecar.metrics.configReload('rejected');
        logger.error({ err: err.message }, 'new config rejected; keeping the running one');
      },
    },
    logger,
  );
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'signal received');
    watcher.close();
    sidecar.shutdown(`received ${signal}`).then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main().catch((err: unknown) => {
  process.stderr.write(
    `${JSON.stringify({ level: 60, msg: 'sidecar failed to start', err: (err as Error).message ?? String(err) })}\n`,
  );
  process.exit(1);
});

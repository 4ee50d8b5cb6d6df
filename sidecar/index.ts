// Public index of sidecar/: config schema, the process's building blocks, the protocol gateways.
export * from './config/index.ts';
export { SIDECAR_IMAGE_ENV, SIDECAR_NODE_FLAGS } from './entrypoint.ts';
export {
  CancelRegistry,
  DEFAULT_LIMITS,
  PostgresGateway,
  type PostgresLimits,
  type PostgresRuntime,
} from './postgres/index.ts';
export { ConfigError, loadConfig, parseConfig, watchConfig } from './server/config.ts';
export { createMetrics, type SidecarMetrics } from './server/metrics.ts';
export { limitsFromEnv } from './server/runtime.ts';
export { Sidecar, type SidecarOptions } from './server/sidecar.ts';

// Public index of webhook/: the admission webhook, its pure renderers and the init program's rules.
export * from './admission.ts';
export { apiClusterReader, type ClusterReader, discoverDnsResolvers } from './cluster.ts';
export * from './config.ts';
export * from './constants.ts';
export { stampDecision } from './handlers/session-approvals.ts';
export { policyProblems } from './handlers/session-policies.ts';
export { ENV as INIT_ENV } from './init/env.ts';
export {
  type InjectionStatus,
  injectPod,
  renderPodPatch,
  stripInjection,
  withContainerDefaults,
} from './inject.ts';
export * from './iptables.ts';
export { loadConfig, type RunningWebhook, startWebhook } from './main.ts';
export { ALLOWED_CAPABILITIES, podViolations, RULES } from './pod-checks.ts';
export { choosePolicy, notReadyReason, type RawSessionPolicy } from './policy.ts';
export { buildWebhookServer, type WebhookServer } from './server.ts';
export { type TlsMaterial, watchFileTls, watchSecretTls } from './tls.ts';
export * from './webhook-configurations.ts';

// The SSH gateway: shell, exec and sftp through the sidecar on the session core.
export { DEFAULT_SSH_LIMITS, type SshLimits, type SshRuntime } from './context.ts';
export { SshGateway } from './gateway.ts';
export { createSshGuard, type SshGuard } from './guard.ts';
export { SSH_RULES } from './rules.ts';
export { buildSshRuntime } from './runtime.ts';
export { fingerprint, parseHostKeys } from './upstream.ts';

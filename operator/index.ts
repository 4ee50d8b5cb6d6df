// Public index of operator/: renderers (used by the webhook and charts), the config schema and the
// operator itself.
export { CA_SECRET_KEYS, TLS_SECRET_KEYS, webhookDnsNames } from './certs/plan.ts';
export {
  type OperatorConfig,
  type OperatorConfigInput,
  operatorConfigSchema,
  parseOperatorConfig,
} from './config.ts';
export { READY } from './controllers/session-policy.ts';
export { type OperatorOptions, type RunningOperator, startOperator } from './operator.ts';
export * from './render/index.ts';

export * from './children.ts';
export * from './conditions.ts';
export * from './labels.ts';
export * from './network-policy.ts';
export * from './paths.ts';
export * from './policy.ts';
export * from './sidecar-config.ts';
export * from './ssh-host-key.ts';

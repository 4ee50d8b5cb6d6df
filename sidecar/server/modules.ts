// The one seam to the identity, policy and recording modules. TEMPORARY: re-exports the testing
// stand-ins until the sidecar-policy and recording branches are merged.
export * from '../postgres/testing-stubs.ts';

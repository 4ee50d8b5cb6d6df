// Public face of sidecar/identity: who the agent is (pod identity plus a verified token).
export { type AttributionChain, describeChain, identityAttribution } from './attribution.ts';
export { IdentityError, type IdentityErrorCode } from './errors.ts';
export type { IssuerConfig, IssuerKeysOptions } from './issuers.ts';
export { LAUNCHER_ENV, type Launcher } from './launcher.ts';
export { POD_ENV, type PodIdentity, podIdentityFromEnv, serviceAccountSubject } from './pod.ts';
export {
  type AgentIdentity,
  ALLOWED_ALGORITHMS,
  createIdentityVerifier,
  type IdentityVerifier,
  type IdentityVerifierOptions,
} from './verifier.ts';

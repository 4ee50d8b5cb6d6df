// The one seam to the identity, policy and recording modules.
export * from '../policy/index.ts';
// TEMPORARY: identity and recording stand-ins until the sidecar-policy (identity) and recording
// branches have them.
export {
  type AgentIdentity,
  createIdentityVerifier,
  generateSigningKey,
  IdentityError,
  type IdentityVerifier,
  listSessions,
  openRecorder,
  openStore,
  type PodIdentity,
  podIdentityFromEnv,
  type Recorder,
  readSession,
  type SessionRecording,
} from '../postgres/testing-stubs.ts';

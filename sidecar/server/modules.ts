// The one seam to the identity, policy and recording modules.
export {
  generateSigningKey,
  listSessions,
  openRecorder,
  openStore,
  type Recorder,
  type RecorderOptions,
  readSession,
  type SessionRecording,
} from '../../recording/index.ts';
export * from '../policy/index.ts';
// TEMPORARY: identity stand-in until the sidecar-policy branch has sidecar/identity.
export {
  type AgentIdentity,
  createIdentityVerifier,
  IdentityError,
  type IdentityVerifier,
  type PodIdentity,
  podIdentityFromEnv,
} from '../postgres/testing-stubs.ts';

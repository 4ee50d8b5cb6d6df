import type { Logger } from 'pino';
import type { SidecarConfig } from '../config/index.ts';

export interface PodIdentity {
  serviceAccount?: string;
  pod?: string;
  namespace?: string;
  node?: string;
  podUid?: string;
}
export function podIdentityFromEnv(env: NodeJS.ProcessEnv = process.env): PodIdentity {
  return {
    serviceAccount: env.CHAPERONE_SERVICE_ACCOUNT,
    pod: env.CHAPERONE_POD_NAME,
    namespace: env.CHAPERONE_POD_NAMESPACE,
    node: env.CHAPERONE_NODE_NAME,
    podUid: env.CHAPERONE_POD_UID,
  };
}
export interface AgentIdentity extends PodIdentity {
  subject: string;
  issuer?: string;
  claims?: Record<string, unknown>;
  viaToken: boolean;
  source?: string;
}
export class IdentityError extends Error {
  code:
    | 'missing'
    | 'malformed'
    | 'signature'
    | 'algorithm'
    | 'expired'
    | 'notYetValid'
    | 'issuer'
    | 'audience'
    | 'denied'
    | 'unavailable';
  constructor(code: IdentityError['code'], message: string) {
    super(message);
    this.code = code;
  }
}
export interface IdentityVerifier {
  authenticate(token: string | undefined, ctx: { source?: string }): Promise<AgentIdentity>;
  close(): void;
}
/** Stub: accepts tokens "valid:<subject>". */
export function createIdentityVerifier(
  config: SidecarConfig['identity'],
  opts: { pod: PodIdentity; logger: Logger },
): IdentityVerifier {
  return {
    async authenticate(token, ctx) {
      if (!token) {
        if (config.tokenRequired) throw new IdentityError('missing', 'a token is required as the password');
        return {
          ...opts.pod,
          subject: `system:serviceaccount:${opts.pod.namespace}:${opts.pod.serviceAccount}`,
          viaToken: false,
          source: ctx.source,
        };
      }
      if (!token.startsWith('valid:')) throw new IdentityError('signature', 'token signature is invalid');
      const subject = token.slice(6);
      if (config.deniedSubjects.includes(subject))
        throw new IdentityError('denied', `subject ${subject} is denied`);
      return { ...opts.pod, subject, issuer: 'stub', viaToken: true, source: ctx.source };
    },
    close() {},
  };
}

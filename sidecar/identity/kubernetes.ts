// Kubernetes service-account tokens beyond their signature: the pod and service account they are
// bound to must be the sidecar's own (issue: a token minted for another pod must not be accepted
// and attributed to it), and TokenReview asks the apiserver whether the token is still live (its
// pod, Secret or service account may have been deleted, or the service account recreated).
import { AuthenticationV1Api, type KubeConfig } from '@kubernetes/client-node';
import type { JWTPayload } from 'jose';
import { IdentityError } from './errors.ts';
import type { PodIdentity } from './pod.ts';

/** iss of Secret-based ("legacy") service-account tokens; they have no exp and no audience. */
export const LEGACY_SA_ISSUER = 'kubernetes/serviceaccount';

export interface KubernetesBinding {
  namespace?: string;
  serviceAccount?: string;
  serviceAccountUid?: string;
  pod?: string;
  podUid?: string;
  /** Legacy tokens: the Secret holding the token. */
  secret?: string;
  legacy: boolean;
}

type Claims = Record<string, unknown>;
const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

/** The binding claims of a Kubernetes token, or undefined when the token has none. */
export function kubernetesBinding(payload: JWTPayload): KubernetesBinding | undefined {
  const bound = payload['kubernetes.io'] as Claims | undefined;
  if (bound && typeof bound === 'object') {
    const sa = bound.serviceaccount as Claims | undefined;
    const pod = bound.pod as Claims | undefined;
    return {
      namespace: str(bound.namespace),
      serviceAccount: str(sa?.name),
      serviceAccountUid: str(sa?.uid),
      pod: str(pod?.name),
      podUid: str(pod?.uid),
      legacy: false,
    } as KubernetesBinding;
  }
  const p = 'kubernetes.io/serviceaccount/';
  if (payload[`${p}namespace`] !== undefined) {
    return {
      namespace: str(payload[`${p}namespace`]),
      serviceAccount: str(payload[`${p}service-account.name`]),
      serviceAccountUid: str(payload[`${p}service-account.uid`]),
      secret: str(payload[`${p}secret.name`]),
      legacy: true,
    } as KubernetesBinding;
  }
  return undefined;
}

export type BindingMode = 'pod' | 'serviceAccount' | 'any';

/** Refuses a token bound elsewhere than this pod and its service account (unless mode is any). */
export function checkBinding(binding: KubernetesBinding, pod: PodIdentity, mode: BindingMode): void {
  if (mode === 'any') return;
  const fail = (why: string) =>
    new IdentityError(
      'binding',
      `${why}; identity.kubernetesTokenBinding ${mode} accepts only tokens of this pod's service account${mode === 'pod' ? ' bound to this pod' : ''}`,
    );
  if (!pod.namespace || !pod.serviceAccount) {
    throw fail("the sidecar does not know its own pod's service account (downward API env missing)");
  }
  const tokenSa = `${binding.namespace ?? '?'}/${binding.serviceAccount ?? '?'}`;
  if (binding.namespace !== pod.namespace || binding.serviceAccount !== pod.serviceAccount) {
    throw fail(`token of service account ${tokenSa}, pod runs as ${pod.namespace}/${pod.serviceAccount}`);
  }
  if (binding.pod !== undefined || binding.podUid !== undefined) {
    if (binding.pod !== pod.pod || (pod.podUid !== undefined && binding.podUid !== pod.podUid)) {
      throw fail(
        `token bound to pod ${binding.pod ?? '?'} (uid ${binding.podUid ?? '?'}), this is pod ${pod.pod ?? '?'} (uid ${pod.podUid ?? '?'})`,
      );
    }
  } else if (mode === 'pod') {
    throw fail(
      `token of ${tokenSa} is not bound to a pod${binding.legacy ? ` (Secret-based token ${binding.secret ?? ''})` : ''}`,
    );
  }
}

export interface TokenReviewResult {
  username: string;
  uid?: string;
  groups?: string[];
  extra?: Record<string, string[]>;
}

export interface TokenReviewer {
  /** Throws IdentityError('revoked') when the apiserver does not authenticate the token. */
  review(token: string, audiences: readonly string[] | undefined): Promise<TokenReviewResult>;
}

export function createTokenReviewer(kubeConfig: () => KubeConfig): TokenReviewer {
  let api: AuthenticationV1Api | undefined;
  return {
    async review(token, audiences) {
      let status: Awaited<ReturnType<AuthenticationV1Api['createTokenReview']>>['status'];
      try {
        api ??= kubeConfig().makeApiClient(AuthenticationV1Api);
        const res = await api.createTokenReview({
          body: {
            apiVersion: 'authentication.k8s.io/v1',
            kind: 'TokenReview',
            spec: { token, ...(audiences ? { audiences: [...audiences] } : {}) },
          },
        });
        status = res.status;
      } catch (err) {
        const code = (err as { code?: number }).code;
        throw new IdentityError(
          'unavailable',
          `TokenReview failed${code ? ` (HTTP ${code}${code === 403 ? ': the sidecar service account needs create on tokenreviews' : ''})` : ''}: ${(err as Error).message?.split('\n')[0]}`,
          { cause: err },
        );
      }
      if (!status?.authenticated || !status.user?.username) {
        throw new IdentityError(
          'revoked',
          `the apiserver no longer accepts this service-account token (TokenReview: ${status?.error ?? 'not authenticated'})`,
        );
      }
      const u = status.user;
      return {
        username: u.username!,
        ...(u.uid ? { uid: u.uid } : {}),
        ...(u.groups ? { groups: u.groups } : {}),
        ...(u.extra ? { extra: u.extra as Record<string, string[]> } : {}),
      };
    },
  };
}

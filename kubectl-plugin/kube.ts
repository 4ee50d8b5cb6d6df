// How the plugin reaches the apiserver (kubeconfig, context, namespace as kubectl resolves them) and
// how a refusal becomes a sentence: a 403 is checked with a SelfSubjectAccessReview, so an RBAC gap
// names the verb, resource, group and namespace the user lacks, and an admission webhook's refusal
// is shown as the webhook worded it.
import { ApiException, AuthenticationV1Api, AuthorizationV1Api, KubeConfig } from '@kubernetes/client-node';
import { CliError } from '../cli/index.ts';

/** Exit code when the apiserver refuses for lack of RBAC. */
export const FORBIDDEN_EXIT = 4;

export interface KubeFlags {
  kubeconfig?: string;
  context?: string;
  namespace?: string;
}

export interface Kube {
  kc: KubeConfig;
  /** The namespace -n names, else the context's, else `default`. */
  namespace: string;
  /** True when -n was given (or the request was located) (an explicit choice, not the context's default). */
  namespaceGiven: boolean;
}

export function loadKube(flags: KubeFlags): Kube {
  const kc = new KubeConfig();
  try {
    if (flags.kubeconfig) kc.loadFromFile(flags.kubeconfig);
    else kc.loadFromDefault();
  } catch (error) {
    throw new CliError(`cannot load kubeconfig: ${(error as Error).message}`);
  }
  if (flags.context) {
    if (!kc.getContextObject(flags.context)) throw new CliError(`context ${flags.context} not in kubeconfig`);
    kc.setCurrentContext(flags.context);
  }
  if (!kc.getCurrentCluster())
    throw new CliError('no cluster in kubeconfig (set KUBECONFIG or --kubeconfig)');
  const contextNamespace = kc.getContextObject(kc.getCurrentContext())?.namespace;
  return {
    kc,
    namespace: flags.namespace ?? contextNamespace ?? 'default',
    namespaceGiven: flags.namespace !== undefined,
  };
}

/** What a request asked the apiserver to do, for the RBAC check after a 403. */
export interface Access {
  verb: string;
  group: string;
  resource: string;
  subresource?: string;
  namespace?: string;
  name?: string;
}

export function statusCode(error: unknown): number | undefined {
  if (error instanceof ApiException) return error.code;
  const e = error as { code?: unknown; statusCode?: unknown };
  if (typeof e?.code === 'number') return e.code;
  if (typeof e?.statusCode === 'number') return e.statusCode;
  return undefined;
}

/** The Status message the apiserver sent, or the error's own message. */
export function serverMessage(error: unknown): string {
  if (error instanceof ApiException) {
    let body: unknown = error.body;
    if (typeof error.body === 'string') {
      const text: string = error.body;
      try {
        body = JSON.parse(text);
      } catch {
        return text || error.message;
      }
    }
    const message = (body as { message?: unknown } | undefined)?.message;
    if (typeof message === 'string' && message) return message;
  }
  return error instanceof Error ? error.message.split('\n')[0]! : String(error);
}

function describeAccess(a: Access): string {
  const resource = a.subresource ? `${a.resource}/${a.subresource}` : a.resource;
  const where = a.namespace ? `in namespace ${a.namespace}` : 'cluster-wide';
  return `${a.verb} ${resource} (API group ${a.group || 'core'}) ${where}`;
}

/** The Role (or ClusterRole) rule that grants `a`, as YAML flow text. */
export function ruleFor(a: Access): string {
  const resource = a.subresource ? `${a.resource}/${a.subresource}` : a.resource;
  const kind = a.namespace ? `a Role in ${a.namespace}` : 'a ClusterRole';
  return `${kind} with {apiGroups: ["${a.group}"], resources: ["${resource}"], verbs: ["${a.verb}"]}`;
}

async function whoAmI(kc: KubeConfig): Promise<string | undefined> {
  try {
    const review = await kc.makeApiClient(AuthenticationV1Api).createSelfSubjectReview({ body: {} });
    return review.status?.userInfo?.username;
  } catch {
    return undefined;
  }
}

/** Whether the apiserver's authorizer allows `a` (undefined: could not ask). */
export async function allowed(kc: KubeConfig, a: Access): Promise<boolean | undefined> {
  try {
    const review = await kc.makeApiClient(AuthorizationV1Api).createSelfSubjectAccessReview({
      body: {
        spec: {
          resourceAttributes: {
            verb: a.verb,
            group: a.group,
            resource: a.resource,
            ...(a.subresource ? { subresource: a.subresource } : {}),
            ...(a.namespace ? { namespace: a.namespace } : {}),
            ...(a.name ? { name: a.name } : {}),
          },
        },
      },
    });
    return review.status?.allowed === true;
  } catch {
    return undefined;
  }
}

/**
 * Turns an apiserver error into a CliError. A 403 the authorizer confirms names the missing
 * permission (exit 4); a 403 the authorizer would allow came from admission (a webhook's refusal).
 */
export async function explain(kc: KubeConfig, error: unknown, access: Access): Promise<CliError> {
  if (error instanceof CliError) return error;
  const code = statusCode(error);
  const message = serverMessage(error);
  if (code === 403) {
    const ok = await allowed(kc, access);
    if (ok !== true) {
      const user = (await whoAmI(kc)) ?? 'you';
      return new CliError(
        `forbidden: ${user} lacks RBAC permission to ${describeAccess(access)}; ask a cluster admin for ${ruleFor(access)}`,
        FORBIDDEN_EXIT,
      );
    }
    return new CliError(`refused: ${message}`);
  }
  if (code === 401)
    return new CliError(`unauthorised: the apiserver did not accept your credentials (${message})`);
  if (code === 404 && access.name) {
    const where = access.namespace ? ` in namespace ${access.namespace}` : '';
    return new CliError(`${access.resource} ${access.name} not found${where}`);
  }
  if (code === 404 && access.resource === 'sessionapprovals')
    return new CliError('the SessionApproval CRD is not installed in this cluster (kubectl apply -f crds/)');
  return new CliError(code ? `${message} (HTTP ${code})` : message);
}

/** Runs `call`; an error becomes the explained CliError. */
export async function kubeCall<T>(kc: KubeConfig, access: Access, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    throw await explain(kc, error, access);
  }
}

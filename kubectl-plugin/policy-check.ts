// `kubectl chaperone policy check <pod.yaml>`: what admission would make of a pod, without creating
// it. The answer comes from a server-side dry-run create (dryRun=All): the apiserver runs the
// deployed chaperone webhook with its real configuration (sidecar image, UIDs, DNS resolvers, the
// SessionPolicy as the webhook sees it) and every other admission step, and stores nothing. Running
// the webhook's pure functions here instead would need a copy of that configuration and would drift.
// Workload manifests (Deployment, Job, ...) are checked through their pod template.
import { readFile } from 'node:fs/promises';
import { CoreV1Api, type V1Container, type V1Pod } from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import { CliError } from '../cli/index.ts';
import { explain, FORBIDDEN_EXIT, type Kube, statusCode } from './kube.ts';

/** Exit code of `policy check` when admission would refuse the pod. */
export const REFUSED_EXIT = 3;

const POLICY_ANNOTATION = 'chaperone.dev/policy';

export interface CheckResult {
  namespace: string;
  pod: string;
  /** inject: a SessionPolicy applies; untouched: admitted as written; refused: admission says no. */
  verdict: 'inject' | 'untouched' | 'refused';
  policy?: string;
  message?: string;
  injected?: {
    initContainers: { name: string; image: string }[];
    containers: { name: string; image: string }[];
    volumes: string[];
    env: Record<string, string[]>;
  };
  /** The pod as admission returned it (dry run). */
  admitted?: V1Pod;
}

/** The pod a manifest describes: a Pod, or the pod template of a workload. */
export function podFromManifest(doc: Record<string, unknown>): V1Pod {
  const kind = doc.kind;
  if (kind === 'Pod') return doc as V1Pod;
  const spec = doc.spec as { template?: V1Pod; jobTemplate?: { spec?: { template?: V1Pod } } } | undefined;
  const template = spec?.template ?? spec?.jobTemplate?.spec?.template;
  if (!template) throw new CliError(`a ${String(kind)} has no pod template to check`);
  const meta = doc.metadata as { name?: string; namespace?: string } | undefined;
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      ...(template.metadata ?? {}),
      generateName: `${meta?.name ?? 'pod'}-`,
      ...(meta?.namespace ? { namespace: meta.namespace } : {}),
    },
    spec: template.spec!,
  };
}

export async function readPods(file: string): Promise<V1Pod[]> {
  let text: string;
  try {
    text = file === '-' ? await readStdin() : await readFile(file, 'utf8');
  } catch (error) {
    throw new CliError(
      `cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
    );
  }
  const docs = parseAllDocuments(text);
  const pods: V1Pod[] = [];
  for (const doc of docs) {
    if (doc.errors.length > 0) throw new CliError(`${file}: ${doc.errors[0]!.message}`);
    const value = doc.toJS() as Record<string, unknown> | null;
    if (value) pods.push(podFromManifest(value));
  }
  if (pods.length === 0) throw new CliError(`${file} holds no manifest`);
  return pods;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

const byName = <T extends { name: string }>(list: T[] | undefined) =>
  new Map((list ?? []).map((x) => [x.name, x]));

function added(before: V1Container[] | undefined, after: V1Container[] | undefined) {
  const old = byName(before);
  return (after ?? []).filter((c) => !old.has(c.name)).map((c) => ({ name: c.name, image: c.image ?? '' }));
}

/** What admission added to the pod (containers, volumes, env per existing container). */
export function injectedInto(before: V1Pod, after: V1Pod): NonNullable<CheckResult['injected']> {
  const oldVolumes = new Set((before.spec?.volumes ?? []).map((v) => v.name));
  const env: Record<string, string[]> = {};
  const oldContainers = byName(before.spec?.containers);
  for (const c of after.spec?.containers ?? []) {
    const had = new Set((oldContainers.get(c.name)?.env ?? []).map((e) => e.name));
    const names = (c.env ?? []).map((e) => e.name).filter((n) => !had.has(n));
    if (names.length > 0) env[c.name] = names;
  }
  return {
    initContainers: added(before.spec?.initContainers, after.spec?.initContainers),
    containers: added(before.spec?.containers, after.spec?.containers),
    volumes: (after.spec?.volumes ?? []).map((v) => v.name).filter((n) => !oldVolumes.has(n)),
    env,
  };
}

export async function checkPod(kube: Kube, pod: V1Pod): Promise<CheckResult> {
  const namespace = kube.namespaceGiven ? kube.namespace : (pod.metadata?.namespace ?? kube.namespace);
  // A generated name: a pod of that name may already run, and the dry run must not collide with it.
  const { name: given, ...metadata } = pod.metadata ?? {};
  const body: V1Pod = {
    ...pod,
    metadata: {
      ...metadata,
      namespace,
      generateName: metadata.generateName ?? `${given ?? 'policy-check'}-`,
    },
  };
  const name = given ?? `${body.metadata!.generateName}<generated>`;
  const core = kube.kc.makeApiClient(CoreV1Api);
  let admitted: V1Pod;
  try {
    admitted = await core.createNamespacedPod({ namespace, body, dryRun: 'All' });
  } catch (error) {
    const access = { verb: 'create', group: '', resource: 'pods', namespace };
    const explained = await explain(kube.kc, error, access);
    // 403 from admission (RBAC was checked), 400/422 from validation: refused as written.
    const code = statusCode(error);
    if (explained.exitCode !== FORBIDDEN_EXIT && (code === 400 || code === 403 || code === 422))
      return {
        namespace,
        pod: name,
        verdict: 'refused',
        message: explained.message.replace(/^refused: /, ''),
      };
    throw explained;
  }
  const policy = admitted.metadata?.annotations?.[POLICY_ANNOTATION];
  const injected = injectedInto(body, admitted);
  // Other admission steps add things too (the service-account token volume): only chaperone's
  // annotation says that a SessionPolicy was applied.
  return {
    namespace,
    pod: name,
    verdict: policy ? 'inject' : 'untouched',
    ...(policy ? { policy } : {}),
    injected,
    admitted,
  };
}

export function describeCheck(r: CheckResult): string {
  const head = `pod ${r.pod} in namespace ${r.namespace}`;
  if (r.verdict === 'refused') return `${head}: REFUSED\n  ${r.message}`;
  if (r.verdict === 'untouched')
    return `${head}: admitted unchanged (no chaperone injection: the namespace is not opted in, the pod opted out, or no SessionPolicy needs to apply)`;
  const i = r.injected!;
  const lines = [`${head}: SessionPolicy ${r.policy ?? '(unnamed)'} applies; admission would inject:`];
  for (const c of i.initContainers) lines.push(`  init container ${c.name} (${c.image})`);
  for (const c of i.containers) lines.push(`  container ${c.name} (${c.image})`);
  if (i.volumes.length > 0) lines.push(`  volumes ${i.volumes.join(', ')}`);
  for (const [container, names] of Object.entries(i.env))
    lines.push(`  env of ${container}: ${names.join(', ')}`);
  return lines.join('\n');
}

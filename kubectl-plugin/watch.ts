// `kubectl chaperone watch`: pending SessionApprovals as they arrive, then their outcome. A list
// first (what is already waiting), then a watch from its resourceVersion, restarted when the server
// ends it; a 410 (history gone) lists again. Each request is announced once and its outcome once.
import { type KubeConfig, Watch } from '@kubernetes/client-node';
import { SESSION_APPROVAL } from '../crds/index.ts';
import { type Approval, type ApprovalState, listApprovals, stateOf } from './approvals.ts';
import type { Kube } from './kube.ts';

const { group, version, plural } = SESSION_APPROVAL;

export interface WatchOptions {
  allNamespaces: boolean;
  /** Called for each new pending request and each outcome of an announced one. */
  onChange(approval: Approval, state: ApprovalState): void;
  onNote(note: string): void;
  signal: AbortSignal;
}

export async function watchApprovals(kube: Kube, options: WatchOptions): Promise<void> {
  const announced = new Map<string, ApprovalState>();
  const key = (a: Approval) => `${a.metadata.namespace}/${a.metadata.name}`;
  const see = (a: Approval) => {
    const state = stateOf(a);
    const before = announced.get(key(a));
    if (before === state) return;
    // Outcomes of requests we never saw pending are old news.
    if (before === undefined && state !== 'pending') return;
    announced.set(key(a), state);
    options.onChange(a, state);
  };

  let listed = await listApprovals(kube, options.allNamespaces);
  if (listed.note) options.onNote(listed.note);
  for (const a of listed.items) see(a);
  let resourceVersion = listed.resourceVersion;
  const path = listed.namespace
    ? `/apis/${group}/${version}/namespaces/${listed.namespace}/${plural}`
    : `/apis/${group}/${version}/${plural}`;

  const seenObjects = new Map<string, Approval>(listed.items.map((a) => [key(a), a]));
  // Requests expire without any event: look at the clock too.
  const expiry = setInterval(() => {
    for (const [k, state] of announced) {
      if (state !== 'pending') continue;
      const a = seenObjects.get(k);
      if (a && stateOf(a) === 'expired') see(a);
    }
  }, 1000);

  try {
    while (!options.signal.aborted) {
      const ended = await watchOnce(kube.kc, path, resourceVersion, options.signal, (type, a) => {
        if (a.metadata?.resourceVersion) resourceVersion = a.metadata.resourceVersion;
        if (type === 'ADDED' || type === 'MODIFIED') {
          seenObjects.set(key(a), a);
          see(a);
        } else if (type === 'DELETED') {
          seenObjects.delete(key(a));
        }
      });
      if (options.signal.aborted) break;
      if (ended === 'gone') {
        listed = await listApprovals(kube, options.allNamespaces);
        for (const a of listed.items) {
          seenObjects.set(key(a), a);
          see(a);
        }
        resourceVersion = listed.resourceVersion;
      } else if (ended === 'error') {
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  } finally {
    clearInterval(expiry);
  }
}

type Ended = 'timeout' | 'gone' | 'error';

function watchOnce(
  kc: KubeConfig,
  path: string,
  resourceVersion: string | undefined,
  signal: AbortSignal,
  onEvent: (type: string, a: Approval) => void,
): Promise<Ended> {
  return new Promise((resolve) => {
    let gone = false;
    let request: AbortController | undefined;
    const stop = () => request?.abort();
    signal.addEventListener('abort', stop, { once: true });
    new Watch(kc)
      .watch(
        path,
        { allowWatchBookmarks: true, ...(resourceVersion ? { resourceVersion } : {}) },
        (type, object: Approval & { code?: number }) => {
          if (type === 'ERROR') {
            if (object.code === 410) gone = true;
            return;
          }
          if (type !== 'BOOKMARK') onEvent(type, object);
          else if (object.metadata?.resourceVersion) onEvent('BOOKMARK', object);
        },
        (error: unknown) => {
          signal.removeEventListener('abort', stop);
          if (gone) resolve('gone');
          else if (
            !error ||
            (error as Error).name === 'TimeoutError' ||
            (error as Error).name === 'AbortError'
          )
            resolve('timeout');
          else resolve('error');
        },
      )
      .then(
        (controller) => {
          request = controller;
          if (signal.aborted) controller.abort();
        },
        () => {
          signal.removeEventListener('abort', stop);
          resolve('error');
        },
      );
  });
}

// The serving certificate, from the operator's Secret (watched through the API) or from files
// (cert-manager); every change is handed to onChange so the server swaps it without a restart.
import { readFile } from 'node:fs/promises';
import { CoreV1Api, type KubeConfig, type V1Secret, Watch } from '@kubernetes/client-node';
import { isStatus } from './cluster.ts';

export interface TlsMaterial {
  cert: string;
  key: string;
}

export interface TlsSourceHandle {
  /** Resolves with the first usable certificate. */
  initial: Promise<TlsMaterial>;
  stop(): void;
}

type Log = (msg: string) => void;

function fromSecret(secret: V1Secret | undefined): TlsMaterial | undefined {
  const data = secret?.data;
  const cert = data?.['tls.crt'];
  const key = data?.['tls.key'];
  if (!cert || !key) return undefined;
  return {
    cert: Buffer.from(cert, 'base64').toString('utf8'),
    key: Buffer.from(key, 'base64').toString('utf8'),
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Reads Secret namespace/name, then watches it. The watch is restarted whenever it ends, for any
 * reason (client-node's watches end on errors and on server-side timeouts alike).
 */
export function watchSecretTls(
  kc: KubeConfig,
  namespace: string,
  name: string,
  onChange: (m: TlsMaterial) => void,
  log: Log = () => {},
): TlsSourceHandle {
  const core = kc.makeApiClient(CoreV1Api);
  let stopped = false;
  let abort: AbortController | undefined;
  let last = '';
  let resolveInitial!: (m: TlsMaterial) => void;
  const initial = new Promise<TlsMaterial>((r) => {
    resolveInitial = r;
  });
  const deliver = (m: TlsMaterial | undefined) => {
    if (!m || m.cert + m.key === last) return;
    last = m.cert + m.key;
    resolveInitial(m);
    onChange(m);
  };

  const loop = async () => {
    let resourceVersion: string | undefined;
    while (!stopped) {
      try {
        if (!resourceVersion) {
          const secret = await core.readNamespacedSecret({ namespace, name }).catch((e: unknown) => {
            if (isStatus(e, 404)) return undefined;
            throw e;
          });
          if (secret) deliver(fromSecret(secret));
          else log(`TLS Secret ${namespace}/${name} not found yet`);
          resourceVersion = secret?.metadata?.resourceVersion;
        }
        const ended = new Promise<unknown>((resolve) => {
          new Watch(kc)
            .watch(
              `/api/v1/namespaces/${namespace}/secrets`,
              {
                fieldSelector: `metadata.name=${name}`,
                allowWatchBookmarks: true,
                ...(resourceVersion ? { resourceVersion } : {}),
              },
              (phase, obj: V1Secret) => {
                if (obj?.metadata?.resourceVersion) resourceVersion = obj.metadata.resourceVersion;
                if (phase === 'ADDED' || phase === 'MODIFIED') deliver(fromSecret(obj));
              },
              resolve,
            )
            .then((a) => {
              abort = a;
            }, resolve);
        });
        const error = await ended;
        if (error && !stopped) {
          log(`TLS Secret watch ended: ${error instanceof Error ? error.message : String(error)}`);
          // 410 Gone and friends: start over from a fresh read.
          resourceVersion = undefined;
          await sleep(1000);
        }
      } catch (error) {
        log(
          `reading TLS Secret ${namespace}/${name} failed: ${error instanceof Error ? error.message : String(error)}`,
        );
        resourceVersion = undefined;
        await sleep(1000);
      }
    }
  };
  void loop();
  return {
    initial,
    stop() {
      stopped = true;
      abort?.abort();
    },
  };
}

/** Polls the two files; a change of either (cert-manager swaps the symlinked directory) reloads both. */
export function watchFileTls(
  certFile: string,
  keyFile: string,
  pollSeconds: number,
  onChange: (m: TlsMaterial) => void,
  log: Log = () => {},
): TlsSourceHandle {
  let last = '';
  let resolveInitial!: (m: TlsMaterial) => void;
  let rejectInitial!: (e: unknown) => void;
  let first = true;
  const initial = new Promise<TlsMaterial>((resolve, reject) => {
    resolveInitial = resolve;
    rejectInitial = reject;
  });
  const check = async () => {
    try {
      const [cert, key] = await Promise.all([readFile(certFile, 'utf8'), readFile(keyFile, 'utf8')]);
      if (cert + key !== last) {
        last = cert + key;
        resolveInitial({ cert, key });
        onChange({ cert, key });
      }
    } catch (error) {
      if (first) rejectInitial(error);
      else log(`reloading TLS files failed: ${error instanceof Error ? error.message : String(error)}`);
    }
    first = false;
  };
  void check();
  const timer = setInterval(check, pollSeconds * 1000);
  timer.unref();
  return { initial, stop: () => clearInterval(timer) };
}

// The offboarding list: identities (token subjects, service accounts, launchers) that left on a
// date. Read from a file, an HTTP endpoint or a ConfigMap, refreshed in the background; the last
// good list stays in use while a refresh fails (and a list never read refuses nobody, logged).
import { readFile } from 'node:fs/promises';
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';

export interface OffboardedEntry {
  subject: string;
  /** YYYY-MM-DD (or a full ISO time). */
  date: string;
}

export interface OffboardingSource {
  file?: string;
  url?: string;
  configMap?: { namespace: string; name: string; key: string };
  refreshSeconds: number;
}

export interface OffboardingList {
  /** Resolves once the first read finished (successfully or not). */
  ready: Promise<void>;
  find(subject: string): OffboardedEntry | undefined;
  /** Reads the list again now. */
  refresh(): Promise<void>;
  close(): void;
}

/** JSON [{subject, date}] or {subject: date}, or lines "subject date" (# comments). */
export function parseOffboarding(text: string): OffboardedEntry[] {
  const trimmed = text.trim();
  if (trimmed === '') return [];
  const valid = (e: OffboardedEntry) => e.subject !== '' && !Number.isNaN(Date.parse(e.date));
  if (trimmed.startsWith('[') || trimmed.startsWith('{')) {
    const parsed = JSON.parse(trimmed) as unknown;
    const entries = Array.isArray(parsed)
      ? (parsed as { subject?: unknown; date?: unknown }[]).map((e) => ({
          subject: String(e.subject ?? ''),
          date: String(e.date ?? ''),
        }))
      : Object.entries(parsed as Record<string, unknown>).map(([subject, date]) => ({
          subject,
          date: String(date),
        }));
    return entries.filter(valid);
  }
  return trimmed
    .split('\n')
    .map((l) => l.replace(/#.*/, '').trim())
    .filter((l) => l !== '')
    .map((l) => {
      const i = l.lastIndexOf(' ');
      return { subject: l.slice(0, i).trim(), date: l.slice(i + 1) };
    })
    .filter(valid);
}

/** Whole days from the offboarding date to `at` (0 on the day itself). */
export function daysSince(entry: OffboardedEntry, at = new Date()): number {
  return Math.max(0, Math.floor((at.getTime() - Date.parse(entry.date)) / 86_400_000));
}

export function createOffboardingList(
  source: OffboardingSource,
  options: { logger: Logger; kubeConfig?: () => KubeConfig; fetch?: typeof fetch },
): OffboardingList {
  let entries = new Map<string, OffboardedEntry>();
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  const doFetch = options.fetch ?? fetch;

  async function read(): Promise<string> {
    if (source.file) return readFile(source.file, 'utf8');
    if (source.url) {
      const res = await doFetch(source.url, { signal: AbortSignal.timeout(5000) });
      if (!res.ok) throw new Error(`${source.url} answered HTTP ${res.status}`);
      return res.text();
    }
    if (source.configMap) {
      if (!options.kubeConfig) throw new Error('no Kubernetes credentials to read the ConfigMap');
      const { namespace, name, key } = source.configMap;
      const cm = await options
        .kubeConfig()
        .makeApiClient(CoreV1Api)
        .readNamespacedConfigMap({ namespace, name });
      const value = cm.data?.[key];
      if (value === undefined) throw new Error(`ConfigMap ${namespace}/${name} has no key ${key}`);
      return value;
    }
    return '';
  }

  async function refresh(): Promise<void> {
    try {
      const list = parseOffboarding(await read());
      entries = new Map(list.map((e) => [e.subject, e]));
    } catch (err) {
      options.logger.error(
        { err: (err as Error).message?.split('\n')[0] },
        'offboarding list unreadable; keeping the last good list',
      );
    }
  }

  const ready = refresh().then(() => {
    if (closed) return;
    timer = setInterval(() => void refresh(), source.refreshSeconds * 1000);
    timer.unref();
  });
  return {
    ready,
    find: (subject) => entries.get(subject),
    refresh,
    close: () => {
      closed = true;
      clearInterval(timer);
    },
  };
}

// Loading and hot-reloading the sidecar config. Kubernetes updates a ConfigMap volume by swapping
// the `..data` symlink in the file's directory, which a watch on the file alone can miss, so both
// the file and its directory are watched, with a slow poll as a safety net. A new config that does
// not validate is rejected with a log line and the running one stays.
import { createHash } from 'node:crypto';
import { type FSWatcher, watch } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import type { Logger } from 'pino';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { type SidecarConfig, sidecarConfigSchema } from '../config/index.ts';

export class ConfigError extends Error {}

/** Parses JSON or YAML text and validates it; the error names every problem with its path. */
export function parseConfig(text: string, source: string): SidecarConfig {
  let raw: unknown;
  try {
    raw = source.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    throw new ConfigError(
      `${source}: not valid ${source.endsWith('.json') ? 'JSON' : 'YAML'}: ${(err as Error).message}`,
    );
  }
  const result = sidecarConfigSchema.safeParse(raw);
  if (!result.success)
    throw new ConfigError(`${source}: invalid sidecar config:\n${z.prettifyError(result.error)}`);
  return result.data;
}

export async function loadConfig(path: string): Promise<{ config: SidecarConfig; digest: string }> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read config ${path}: ${(err as Error).message}`);
  }
  return { config: parseConfig(text, path), digest: createHash('sha256').update(text).digest('hex') };
}

/** Where the config comes from: --config, then CHAPERONE_CONFIG. */
export function configPathFrom(argvPath: string | undefined, env: NodeJS.ProcessEnv): string | undefined {
  return argvPath ?? env.CHAPERONE_CONFIG;
}

export interface ConfigWatcher {
  close(): void;
}

/**
 * Calls onChange with each new valid config (content changed); onInvalid with the error of each
 * rejected one. Changes are debounced so an editor's write-rename sequence counts once.
 */
export function watchConfig(
  path: string,
  initialDigest: string,
  handlers: { onChange(config: SidecarConfig): Promise<void> | void; onInvalid(err: Error): void },
  logger: Logger,
  opts: { debounceMs?: number; pollMs?: number } = {},
): ConfigWatcher {
  let digest = initialDigest;
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  let running = Promise.resolve();
  let fileWatcher: FSWatcher | undefined;

  const check = () => {
    running = running.then(async () => {
      if (closed) return;
      let text: string;
      try {
        text = await readFile(path, 'utf8');
      } catch (err) {
        // Mid-swap the file can be briefly absent; the next event or poll picks it up.
        logger.debug({ err: (err as Error).message }, 'config file not readable right now');
        return;
      }
      const next = createHash('sha256').update(text).digest('hex');
      if (next === digest) return;
      digest = next;
      let config: SidecarConfig;
      try {
        config = parseConfig(text, path);
      } catch (err) {
        handlers.onInvalid(err as Error);
        return;
      }
      await handlers.onChange(config);
    });
    watchFile();
  };
  const schedule = () => {
    if (closed) return;
    clearTimeout(timer);
    timer = setTimeout(check, opts.debounceMs ?? 200);
  };
  // The file watch follows an inode; after a replace it must be set up again.
  const watchFile = () => {
    fileWatcher?.close();
    fileWatcher = undefined;
    if (closed) return;
    try {
      fileWatcher = watch(path, { persistent: false }, schedule);
      fileWatcher.on('error', () => undefined);
    } catch {
      // absent right now; the directory watch sees it come back
    }
  };
  watchFile();
  const name = basename(path);
  const dirWatcher = watch(dirname(path), { persistent: false }, (_event, file) => {
    if (!file || file === name || file === '..data' || file.startsWith('..')) schedule();
  });
  dirWatcher.on('error', (err) => logger.warn({ err: err.message }, 'config directory watch failed'));
  const poll = setInterval(check, opts.pollMs ?? 10_000);
  poll.unref();
  return {
    close() {
      closed = true;
      clearTimeout(timer);
      clearInterval(poll);
      fileWatcher?.close();
      dirWatcher.close();
    },
  };
}

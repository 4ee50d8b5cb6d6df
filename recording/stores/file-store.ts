// The embedded store: a local directory with the same key layout as S3. Objects are written to a
// temporary name, fsync'd and then renamed (or hard-linked when they must not replace anything), so
// a reader never sees half an object.
import { createHash, randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { chmod, link, mkdir, open, readdir, readFile, rename, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { StoreError } from '../errors.ts';
import type { PutOptions, SegmentStore } from './store.ts';

export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, constants.O_RDONLY);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export class FileStore implements SegmentStore {
  readonly url: string;
  readonly root: string;

  constructor(url: string) {
    this.url = url;
    this.root = fileURLToPath(url);
  }

  private path(key: string): string {
    if (key.split('/').some((p) => p === '..' || p === '.') || key.startsWith('/')) {
      throw new StoreError('other', `invalid object key ${JSON.stringify(key)}`);
    }
    return join(this.root, ...key.split('/'));
  }

  async put(key: string, body: Uint8Array, options: PutOptions): Promise<void> {
    const actual = createHash('sha256').update(body).digest();
    if (!actual.equals(options.sha256)) {
      throw new StoreError(
        'other',
        `checksum mismatch writing ${key}: the body is not what the caller hashed`,
      );
    }
    const final = this.path(key);
    const dir = dirname(final);
    await mkdir(dir, { recursive: true });
    const tmp = join(dir, `.tmp-${randomBytes(6).toString('hex')}`);
    const fh = await open(tmp, 'w', 0o644);
    try {
      await fh.writeFile(body);
      await fh.sync();
    } finally {
      await fh.close();
    }
    try {
      if (options.ifAbsent) {
        try {
          await link(tmp, final);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
          const existing = await readFile(final);
          if (!createHash('sha256').update(existing).digest().equals(actual)) {
            throw new StoreError(
              'conflict',
              `${key} already exists with different content; refusing to replace it`,
            );
          }
        }
      } else {
        await rename(tmp, final);
      }
      if (options.retention) await chmod(final, 0o444);
      await fsyncDir(dir);
    } finally {
      await unlink(tmp).catch(() => {});
    }
  }

  async get(key: string): Promise<Buffer | undefined> {
    try {
      return await readFile(this.path(key));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR') return undefined;
      throw err;
    }
  }

  async *list(prefix: string): AsyncIterable<string> {
    // Walk from the deepest folder the prefix names; filter the rest by string prefix.
    const slash = prefix.lastIndexOf('/');
    const base = slash >= 0 ? prefix.slice(0, slash + 1) : '';
    yield* this.walk(base, prefix);
  }

  private async *walk(folder: string, prefix: string): AsyncIterable<string> {
    let entries: import('node:fs').Dirent[];
    try {
      entries = await readdir(folder ? this.path(folder.slice(0, -1)) : this.root, { withFileTypes: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    // S3 orders keys by bytes; a folder `a/` sorts by its name followed by '/'.
    const named = entries
      .filter((e) => !e.name.startsWith('.'))
      .map((e) => ({ e, sortKey: e.isDirectory() ? `${e.name}/` : e.name }))
      .sort((a, b) => (a.sortKey < b.sortKey ? -1 : a.sortKey > b.sortKey ? 1 : 0));
    for (const { e, sortKey } of named) {
      const key = folder + sortKey;
      if (e.isDirectory()) {
        if (key.startsWith(prefix) || prefix.startsWith(key)) yield* this.walk(key, prefix);
      } else if (key.startsWith(prefix)) {
        yield key;
      }
    }
  }

  async *listFolders(prefix: string): AsyncIterable<string> {
    if (prefix && !prefix.endsWith('/'))
      throw new StoreError('other', 'listFolders needs a prefix ending in /');
    let entries: import('node:fs').Dirent[];
    try {
      entries = await readdir(prefix ? this.path(prefix.slice(0, -1)) : this.root, { withFileTypes: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    const names = entries
      .filter((e) => e.isDirectory() && !e.name.startsWith('.'))
      .map((e) => e.name)
      .sort();
    for (const name of names) yield `${prefix}${name}/`;
  }
}

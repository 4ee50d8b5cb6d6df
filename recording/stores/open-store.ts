import { StoreError } from '../errors.ts';
import { FileStore } from './file-store.ts';
import { type S3Options, S3Store } from './s3-store.ts';
import type { SegmentStore } from './store.ts';

/** `file:///abs/dir` (embedded default) or `s3://bucket/prefix`. */
export function openStore(url: string, s3?: S3Options): SegmentStore {
  if (url.startsWith('file://')) {
    if (!url.startsWith('file:///'))
      throw new StoreError('other', `file store URL must be absolute: file:///dir (got ${url})`);
    return new FileStore(url);
  }
  if (url.startsWith('s3://')) return new S3Store(url, s3);
  throw new StoreError(
    'other',
    `unknown store URL ${JSON.stringify(url)}: use file:///dir or s3://bucket/prefix`,
  );
}

// Where sealed segments, manifests and index objects go. Keys are relative to the store's root.
export interface PutOptions {
  /** SHA-256 of the body; the store verifies it on arrival (S3 ChecksumSHA256). */
  sha256: Buffer;
  contentType: string;
  /** Never replace an existing object; an identical existing object counts as success. */
  ifAbsent?: boolean;
  /** Object Lock: the store refuses deletion of this version until `until`. */
  retention?: { mode: 'GOVERNANCE' | 'COMPLIANCE'; until: Date };
}

export interface SegmentStore {
  /** `file:///dir` or `s3://bucket/prefix`, for messages. */
  readonly url: string;
  put(key: string, body: Uint8Array, options: PutOptions): Promise<void>;
  /** The object's bytes, or undefined when it does not exist. */
  get(key: string): Promise<Buffer | undefined>;
  /** Keys under `prefix`, in ascending byte order. */
  list(prefix: string): AsyncIterable<string>;
  /** "Folders" directly under `prefix` (ending in '/'), in ascending order. */
  listFolders(prefix: string): AsyncIterable<string>;
}

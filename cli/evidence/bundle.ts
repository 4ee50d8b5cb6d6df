// An evidence bundle: a zip (yazl) holding sessions exactly as stored (segments, signed manifests,
// signed index objects, under store/ with the store's own key layout), the trusted public keys,
// bundle.json (what is included and why), VERIFY.md + verify.sh (how to check it with sha256sum
// and openssl alone) and SHA256SUMS. Each object is fetched only when the zip reaches its entry
// (yazl's lazy streams), so memory holds about one object whatever the bundle's size.
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { rename, unlink } from 'node:fs/promises';
import { Readable } from 'node:stream';
import yazl from 'yazl';
import {
  indexKey,
  loadPublicKeys,
  locateSession,
  type SegmentStore,
  SessionNotFoundError,
  sessionPrefix,
  type VerifyReport,
  verifySession,
} from '../../recording/index.ts';
import { versionLine } from '../version.ts';
import { VERIFY_SCRIPT, verifyMarkdown } from './verify-script.ts';

export const EVIDENCE_FORMAT = 'chaperone.evidence/v1';

export interface EvidenceSession {
  sessionId: string;
  /** Why it is in the bundle: named on the command line, or the filter it matched. */
  why: string;
}

export interface BundleOptions {
  store: SegmentStore;
  sessions: EvidenceSession[];
  /** PEM public keys: put in keys/ and used for the verification recorded in bundle.json. */
  publicKeys: string[];
  output: string;
  /** The auditor's own words (a case number, a request): kept in bundle.json. */
  reason?: string;
  selection: Record<string, unknown>;
  onSession?: () => void;
  now?: Date;
}

export interface BundleFile {
  path: string;
  bytes: number;
  sha256: string;
}

export interface BundleSummary {
  output: string;
  sessions: { sessionId: string; why: string; verification: VerifyReport; files: BundleFile[] }[];
  keys: { file: string; fingerprint: string }[];
  verified: boolean;
}

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

export async function writeEvidenceBundle(o: BundleOptions): Promise<BundleSummary> {
  const zip = new yazl.ZipFile();
  const tmp = `${o.output}.partial`;
  const out = createWriteStream(tmp);
  zip.outputStream.pipe(out);
  const mtime = o.now ?? new Date();
  const sums: string[] = [];
  const record = (path: string, body: Buffer): BundleFile => {
    const f = { path, bytes: body.length, sha256: sha256(body) };
    sums.push(`${f.sha256}  ${path}`);
    return f;
  };
  const add = (path: string, body: Buffer): BundleFile => {
    zip.addBuffer(body, path, { mtime, mode: 0o644 });
    return record(path, body);
  };
  /** An entry whose bytes are made when the zip gets to it (after every entry before it). */
  const addLazy = (
    path: string,
    make: () => Promise<Buffer>,
    options: { compress?: boolean; mode?: number } = {},
  ) =>
    zip.addReadStreamLazy(
      path,
      { mtime, mode: options.mode ?? 0o644, compress: options.compress ?? true },
      (cb) => {
        make().then(
          (body) => cb(null, Readable.from([body])),
          (err: Error) => cb(err, undefined as never),
        );
      },
    );
  try {
    const keys = loadPublicKeys(o.publicKeys).map((k, i) => ({
      file: `keys/${k.fingerprint}.pem`,
      pem: o.publicKeys[i]!,
      fingerprint: k.fingerprint,
    }));
    for (const k of keys) add(k.file, Buffer.from(k.pem.endsWith('\n') ? k.pem : `${k.pem}\n`));
    const summary: BundleSummary = {
      output: o.output,
      sessions: [],
      keys: keys.map(({ file, fingerprint }) => ({ file, fingerprint })),
      verified: true,
    };
    for (const s of o.sessions) {
      const loc = await locateSession(o.store, s.sessionId);
      if (!loc) throw new SessionNotFoundError(`session ${s.sessionId} not found in ${o.store.url}`);
      const verification = await verifySession(o.store, s.sessionId, o.publicKeys);
      if (!verification.ok) summary.verified = false;
      const files: BundleFile[] = [];
      const objectKeys: string[] = [];
      for await (const key of o.store.list(sessionPrefix(loc))) objectKeys.push(key);
      objectKeys.push(indexKey(loc));
      for (const key of objectKeys) {
        const path = `store/${key}`;
        // Segments are zstd already; deflating them again gains nothing.
        addLazy(
          path,
          async () => {
            const body = await o.store.get(key);
            if (!body) throw new Error(`${key} disappeared from ${o.store.url} while bundling`);
            files.push(record(path, body));
            return body;
          },
          { compress: !key.endsWith('.zst') },
        );
      }
      summary.sessions.push({ sessionId: s.sessionId, why: s.why, verification, files });
      o.onSession?.();
    }
    const manifest = () => ({
      format: EVIDENCE_FORMAT,
      createdAt: mtime.toISOString(),
      createdBy: versionLine('chaperone'),
      store: o.store.url,
      ...(o.reason ? { reason: o.reason } : {}),
      selection: o.selection,
      keys: summary.keys,
      sessions: summary.sessions.map((s) => ({
        sessionId: s.sessionId,
        why: s.why,
        verifiedWhenBundled: {
          ok: s.verification.ok,
          complete: s.verification.complete,
          segments: s.verification.segments,
          events: s.verification.events,
          gaps: s.verification.gaps,
          keyIds: s.verification.keyIds,
          ...(s.verification.failure ? { failure: s.verification.failure } : {}),
        },
        files: s.files,
      })),
    });
    // These three come after every object, so the lazily read objects' hashes are known by then.
    addLazy('bundle.json', async () => {
      const body = Buffer.from(`${JSON.stringify(manifest(), null, 2)}\n`);
      record('bundle.json', body);
      return body;
    });
    add('VERIFY.md', Buffer.from(verifyMarkdown()));
    zip.addBuffer(Buffer.from(VERIFY_SCRIPT), 'verify.sh', { mtime, mode: 0o755 });
    record('verify.sh', Buffer.from(VERIFY_SCRIPT));
    addLazy('SHA256SUMS', async () => Buffer.from(`${sums.join('\n')}\n`));
    zip.end();
    await Promise.race([
      once(out, 'close'),
      once(zip, 'error').then(([err]) => {
        throw err;
      }),
    ]);
    await rename(tmp, o.output);
    return summary;
  } catch (err) {
    zip.outputStream.unpipe(out);
    out.destroy();
    await unlink(tmp).catch(() => {});
    throw err;
  }
}

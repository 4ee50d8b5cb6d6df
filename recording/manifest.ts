// Segment manifests: one signed JSON object per sealed segment. The signature (Ed25519 over the
// canonical JSON of every other field) binds the segment's bytes (sha256), its place in the session
// (index, seq range) and the previous segment's sha256 (the chain).
import { z } from 'zod';
import { canonicalJson } from './canonical-json.ts';
import { type SigningKey, signDocument } from './keys.ts';

export const MANIFEST_FORMAT = 'chaperone.segment/v1';

const hex64 = z.string().regex(/^[0-9a-f]{64}$/);

export const SegmentManifestSchema = z.object({
  format: z.literal(MANIFEST_FORMAT),
  sessionId: z.string(),
  index: z.number().int().min(1),
  firstSeq: z.number().int().min(0),
  lastSeq: z.number().int().min(0),
  events: z.number().int().min(1),
  firstWallMs: z.number().int(),
  lastWallMs: z.number().int(),
  compression: z.literal('zstd'),
  bytes: z.number().int().min(0),
  sha256: hex64,
  rawBytes: z.number().int().min(0),
  rawSha256: hex64,
  prevSha256: hex64.nullable(),
  final: z.boolean(),
  sealedAt: z.string(),
  keyId: z.string(),
  keyFingerprint: hex64,
  signature: z.string(),
});
export type SegmentManifest = z.infer<typeof SegmentManifestSchema>;
export type ManifestBody = Omit<
  SegmentManifest,
  'format' | 'keyId' | 'keyFingerprint' | 'signature' | 'compression'
>;

export function buildManifest(body: ManifestBody, key: SigningKey): SegmentManifest {
  return signDocument(
    {
      format: MANIFEST_FORMAT,
      compression: 'zstd' as const,
      ...body,
      keyId: key.keyId,
      keyFingerprint: key.fingerprint,
    },
    key,
  );
}

/** The stored manifest object: canonical JSON plus a newline. */
export function encodeManifest(manifest: SegmentManifest): Buffer {
  return Buffer.from(`${canonicalJson(manifest)}\n`, 'utf8');
}

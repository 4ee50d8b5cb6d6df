// Ed25519 keys: loading, fingerprints, signing canonical JSON. A key's fingerprint is the SHA-256
// of its raw 32-byte public key (hex); manifests carry it so a verifier knows which key signed them.
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  sign,
  verify,
} from 'node:crypto';
import { canonicalJson } from './canonical-json.ts';
import { KeyError } from './errors.ts';

export interface SigningKey {
  privateKey: KeyObject;
  publicKey: KeyObject;
  /** Label written into manifests (defaults to the first 16 hex digits of the fingerprint). */
  keyId: string;
  fingerprint: string;
}

export interface TrustedKey {
  publicKey: KeyObject;
  fingerprint: string;
  keyId?: string;
}

/** Public keys a verifier trusts: KeyObjects or PEM strings, optionally labelled by keyId. */
export type PublicKeyInput = KeyObject | string | TrustedKeyInput;
export interface TrustedKeyInput {
  keyId?: string;
  key: KeyObject | string;
}
export type PublicKeysInput = PublicKeyInput | readonly PublicKeyInput[] | Record<string, KeyObject | string>;

function rawPublicKey(publicKey: KeyObject): Buffer {
  const jwk = publicKey.export({ format: 'jwk' });
  if (jwk.crv !== 'Ed25519' || typeof jwk.x !== 'string') throw new KeyError('not an Ed25519 public key');
  return Buffer.from(jwk.x, 'base64url');
}

export function publicKeyFingerprint(publicKey: KeyObject): string {
  return createHash('sha256').update(rawPublicKey(publicKey)).digest('hex');
}

export function defaultKeyId(fingerprint: string): string {
  return fingerprint.slice(0, 16);
}

export function loadSigningKey(key: KeyObject | string, keyId?: string): SigningKey {
  let privateKey: KeyObject;
  try {
    privateKey = typeof key === 'string' ? createPrivateKey(key) : key;
  } catch (err) {
    throw new KeyError(`signing key is not a readable PEM private key: ${(err as Error).message}`);
  }
  if (privateKey.type !== 'private' || privateKey.asymmetricKeyType !== 'ed25519') {
    throw new KeyError(
      `signing key must be an Ed25519 private key (got ${privateKey.asymmetricKeyType} ${privateKey.type})`,
    );
  }
  const publicKey = createPublicKey(privateKey);
  const fingerprint = publicKeyFingerprint(publicKey);
  return { privateKey, publicKey, fingerprint, keyId: keyId ?? defaultKeyId(fingerprint) };
}

function toPublicKey(key: KeyObject | string): KeyObject {
  try {
    const k =
      typeof key === 'string' ? createPublicKey(key) : key.type === 'private' ? createPublicKey(key) : key;
    if (k.asymmetricKeyType !== 'ed25519') throw new Error(`got a ${k.asymmetricKeyType} key`);
    return k;
  } catch (err) {
    throw new KeyError(`public key is not a readable Ed25519 PEM key: ${(err as Error).message}`);
  }
}

export function loadPublicKeys(input: PublicKeysInput): TrustedKey[] {
  const items: TrustedKeyInput[] = [];
  const one = (k: PublicKeyInput): TrustedKeyInput =>
    typeof k === 'string' || isKeyObject(k) ? { key: k } : (k as TrustedKeyInput);
  if (Array.isArray(input)) for (const k of input) items.push(one(k as PublicKeyInput));
  else if (typeof input === 'string' || isKeyObject(input) || 'key' in (input as object))
    items.push(one(input as PublicKeyInput));
  else
    for (const [keyId, key] of Object.entries(input as Record<string, KeyObject | string>))
      items.push({ keyId, key });
  return items.map(({ keyId, key }) => {
    const publicKey = toPublicKey(key);
    return { publicKey, fingerprint: publicKeyFingerprint(publicKey), ...(keyId ? { keyId } : {}) };
  });
}

function isKeyObject(k: unknown): k is KeyObject {
  return typeof k === 'object' && k !== null && typeof (k as KeyObject).export === 'function' && 'type' in k;
}

export function generateSigningKey(): { privateKeyPem: string; publicKeyPem: string; keyId: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return {
    privateKeyPem: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
    publicKeyPem: publicKey.export({ format: 'pem', type: 'spki' }).toString(),
    keyId: defaultKeyId(publicKeyFingerprint(publicKey)),
  };
}

/** The bytes a signature covers: canonical JSON of the object without its `signature` field. */
export function signedBytes(document: Record<string, unknown>): Buffer {
  const { signature: _ignored, ...body } = document;
  return Buffer.from(canonicalJson(body), 'utf8');
}

export function signDocument<T extends Record<string, unknown>>(
  body: T,
  key: SigningKey,
): T & { signature: string } {
  const signature = sign(null, signedBytes(body), key.privateKey).toString('base64');
  return { ...body, signature };
}

export type SignatureCheck =
  | { ok: true; key: TrustedKey }
  | { ok: false; reason: 'wrong-key' | 'bad-signature'; message: string };

/**
 * Checks a signed document against the trusted keys. `wrong-key`: signed by a key we do not trust
 * (its fingerprint is not among ours); `bad-signature`: claims a trusted key but the bytes do not
 * match what that key signed (altered after signing, or forged).
 */
export function checkSignature(
  document: Record<string, unknown>,
  trusted: readonly TrustedKey[],
): SignatureCheck {
  const fingerprint = document.keyFingerprint;
  const signature = document.signature;
  if (typeof signature !== 'string' || typeof fingerprint !== 'string') {
    return { ok: false, reason: 'bad-signature', message: 'document has no signature or key fingerprint' };
  }
  const key = trusted.find((k) => k.fingerprint === fingerprint);
  if (!key) {
    return {
      ok: false,
      reason: 'wrong-key',
      message: `signed with key ${String(document.keyId ?? '?')} (fingerprint ${fingerprint.slice(0, 16)}...), which is not among the trusted public keys`,
    };
  }
  const sig = Buffer.from(signature, 'base64');
  if (sig.length !== 64 || !verify(null, signedBytes(document), key.publicKey, sig)) {
    return {
      ok: false,
      reason: 'bad-signature',
      message: 'signature does not match the signed content (altered after signing)',
    };
  }
  return { ok: true, key };
}

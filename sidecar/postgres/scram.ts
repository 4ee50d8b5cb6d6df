// SCRAM-SHA-256 client (RFC 5802 / RFC 7677) for the upstream login. Over TLS, when the server
// offers SCRAM-SHA-256-PLUS, with channel binding tls-server-end-point (RFC 5929): the proof is
// then bound to the server's certificate, so a man in the middle holding another certificate cannot
// relay it. The server's signature is verified, so a server that does not know the password cannot
// pretend the login succeeded.
import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto';

export class ScramError extends Error {}

const hmac = (key: Buffer, data: string | Buffer): Buffer => createHmac('sha256', key).update(data).digest();
const sha256 = (data: Buffer): Buffer => createHash('sha256').update(data).digest();

function xor(a: Buffer, b: Buffer): Buffer {
  const out = Buffer.allocUnsafe(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i]! ^ b[i]!;
  return out;
}

function attributes(message: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of message.split(',')) {
    const eq = part.indexOf('=');
    if (eq !== 1) throw new ScramError(`malformed SCRAM attribute in "${message}"`);
    out.set(part[0]!, part.slice(2));
  }
  return out;
}

/** SASLprep is approximated by NFKC normalisation (identical for ASCII passwords). */
export class ScramClient {
  private readonly password: string;
  private readonly clientNonce: string;
  private readonly user: string;
  private clientFirstBare = '';
  private expectedServerSignature: Buffer | undefined;
  /** tls-server-end-point data; with it the gs2 header is "p=tls-server-end-point,,". */
  private readonly channelBinding: Buffer | undefined;
  private readonly gs2: string;

  /** PostgreSQL ignores the SCRAM user name (it takes the startup packet's), hence "*". */
  constructor(
    password: string,
    clientNonce = randomBytes(18).toString('base64'),
    user = '*',
    channelBinding?: Buffer,
  ) {
    this.password = password;
    this.clientNonce = clientNonce;
    this.user = user;
    this.channelBinding = channelBinding;
    this.gs2 = channelBinding ? 'p=tls-server-end-point,,' : 'n,,';
  }

  clientFirst(): string {
    this.clientFirstBare = `n=${this.user},r=${this.clientNonce}`;
    return `${this.gs2}${this.clientFirstBare}`;
  }

  /** Consumes server-first-message, returns client-final-message. */
  clientFinal(serverFirst: string): string {
    const attrs = attributes(serverFirst);
    const nonce = attrs.get('r');
    const saltB64 = attrs.get('s');
    const iterations = Number(attrs.get('i'));
    if (!nonce || !saltB64 || !Number.isInteger(iterations) || iterations < 1) {
      throw new ScramError('server-first-message lacks nonce, salt or iteration count');
    }
    if (!nonce.startsWith(this.clientNonce) || nonce.length === this.clientNonce.length) {
      throw new ScramError('server nonce does not extend the client nonce');
    }
    const salt = Buffer.from(saltB64, 'base64');
    const saltedPassword = pbkdf2Sync(this.password.normalize('NFKC'), salt, iterations, 32, 'sha256');
    const clientKey = hmac(saltedPassword, 'Client Key');
    const storedKey = sha256(clientKey);
    const cbind = Buffer.concat([Buffer.from(this.gs2), this.channelBinding ?? Buffer.alloc(0)]);
    const clientFinalWithoutProof = `c=${cbind.toString('base64')},r=${nonce}`;
    const authMessage = `${this.clientFirstBare},${serverFirst},${clientFinalWithoutProof}`;
    const clientSignature = hmac(storedKey, authMessage);
    const proof = xor(clientKey, clientSignature).toString('base64');
    const serverKey = hmac(saltedPassword, 'Server Key');
    this.expectedServerSignature = hmac(serverKey, authMessage);
    return `${clientFinalWithoutProof},p=${proof}`;
  }

  /** Checks server-final-message; throws unless the server proved it knows the password. */
  verifyServerFinal(serverFinal: string): void {
    const attrs = attributes(serverFinal);
    const error = attrs.get('e');
    if (error) throw new ScramError(`server rejected SCRAM authentication: ${error}`);
    const v = attrs.get('v');
    if (!v || !this.expectedServerSignature) throw new ScramError('server-final-message lacks a signature');
    const got = Buffer.from(v, 'base64');
    if (
      got.length !== this.expectedServerSignature.length ||
      !timingSafeEqual(got, this.expectedServerSignature)
    ) {
      throw new ScramError('server signature does not match: the upstream does not know the password');
    }
  }
}

/** md5 password hash as PostgreSQL expects it: "md5" + md5(md5(password + user) + salt). */
export function md5Password(user: string, password: string, salt: Buffer): string {
  const inner = createHash('md5')
    .update(password + user)
    .digest('hex');
  return `md5${createHash('md5')
    .update(Buffer.concat([Buffer.from(inner), salt]))
    .digest('hex')}`;
}

// Signature algorithms whose hash is not SHA-256 (RFC 5929: MD5 and SHA-1 certificates use SHA-256).
const SHA384_OIDS = ['2a864886f70d01010c', '2a8648ce3d040303']; // sha384WithRSA, ecdsa-with-SHA384
const SHA512_OIDS = ['2a864886f70d01010d', '2a8648ce3d040304']; // sha512WithRSA, ecdsa-with-SHA512

/** DER: the length at `at` (after the tag) and where the contents start. */
function derLength(der: Buffer, at: number): { length: number; start: number } {
  const first = der[at]!;
  if (first < 0x80) return { length: first, start: at + 1 };
  const n = first & 0x7f;
  let length = 0;
  for (let i = 0; i < n; i++) length = length * 256 + der[at + 1 + i]!;
  return { length, start: at + 1 + n };
}

/** The certificate's signatureAlgorithm OID (hex), from Certificate ::= SEQUENCE { tbs, alg, sig }. */
function signatureOid(der: Buffer): string | undefined {
  try {
    const outer = derLength(der, 1);
    const tbs = derLength(der, outer.start + 1);
    const algAt = tbs.start + tbs.length; // AlgorithmIdentifier SEQUENCE
    const alg = derLength(der, algAt + 1);
    if (der[alg.start] !== 0x06) return undefined;
    const oid = derLength(der, alg.start + 1);
    return der.subarray(oid.start, oid.start + oid.length).toString('hex');
  } catch {
    return undefined;
  }
}

/** tls-server-end-point channel binding data: the server certificate hashed as RFC 5929 says. */
export function tlsServerEndPoint(certDer: Buffer): Buffer {
  const oid = signatureOid(certDer) ?? '';
  const hash = SHA512_OIDS.includes(oid) ? 'sha512' : SHA384_OIDS.includes(oid) ? 'sha384' : 'sha256';
  return createHash(hash).update(certDer).digest();
}

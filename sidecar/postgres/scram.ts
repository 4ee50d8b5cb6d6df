// SCRAM-SHA-256 client (RFC 5802 / RFC 7677) for the upstream login, without channel binding
// (gs2 header "n,,"). The server's signature is verified, so a server that does not know the
// password cannot pretend the login succeeded.
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

  /** PostgreSQL ignores the SCRAM user name (it takes the startup packet's), hence "*". */
  constructor(password: string, clientNonce = randomBytes(18).toString('base64'), user = '*') {
    this.password = password;
    this.clientNonce = clientNonce;
    this.user = user;
  }

  clientFirst(): string {
    this.clientFirstBare = `n=${this.user},r=${this.clientNonce}`;
    return `n,,${this.clientFirstBare}`;
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
    const clientFinalWithoutProof = `c=${Buffer.from('n,,').toString('base64')},r=${nonce}`;
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

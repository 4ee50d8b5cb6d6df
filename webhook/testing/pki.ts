// A throwaway CA and serving certificates for the webhook in tests (the operator rotates the real ones).
// @peculiar/x509 resolves its algorithms through tsyringe, which needs the Reflect metadata API.
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

const ecdsa = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const signingAlgorithm = { name: 'ECDSA', hash: 'SHA-256' } as const;
const hourMs = 3600_000;

export interface TestCa {
  certPem: string;
  cert: x509.X509Certificate;
  keys: webcrypto.CryptoKeyPair;
}

export interface ServingCert {
  certPem: string;
  keyPem: string;
  /** SHA-256 of the DER certificate, hex, as node's TLS peer certificate reports it (colon-less). */
  fingerprint: string;
}

async function newKeys(): Promise<webcrypto.CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey(ecdsa, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
}

export async function createTestCa(commonName = 'chaperone-webhook-test-ca'): Promise<TestCa> {
  const keys = await newKeys();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    name: `CN=${commonName}`,
    keys,
    signingAlgorithm,
    notBefore: new Date(Date.now() - hourMs),
    notAfter: new Date(Date.now() + 24 * hourMs),
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { cert, keys, certPem: cert.toString('pem') };
}

export async function issueServingCert(
  ca: TestCa,
  ips: string[] = ['127.0.0.1', '::1'],
): Promise<ServingCert> {
  const keys = await newKeys();
  const cert = await x509.X509CertificateGenerator.create({
    subject: 'CN=chaperone-webhook',
    issuer: ca.cert.subject,
    publicKey: keys.publicKey,
    signingKey: ca.keys.privateKey,
    signingAlgorithm,
    notBefore: new Date(Date.now() - hourMs),
    notAfter: new Date(Date.now() + 24 * hourMs),
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth], false),
      new x509.SubjectAlternativeNameExtension(
        [
          ...ips.map((value) => ({ type: 'ip' as const, value })),
          { type: 'dns' as const, value: 'localhost' },
        ],
        false,
      ),
      await x509.AuthorityKeyIdentifierExtension.create(ca.keys.publicKey),
    ],
  });
  const der = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
  const thumbprint = Buffer.from(await cert.getThumbprint('SHA-256')).toString('hex');
  return {
    certPem: cert.toString('pem'),
    keyPem: x509.PemConverter.encode(der, 'PRIVATE KEY'),
    fingerprint: thumbprint,
  };
}

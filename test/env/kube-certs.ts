// The control plane's PKI, generated in-process for every start: one CA that signs the apiserver's
// serving cert and the admin client cert, plus the RSA key that signs service-account tokens.
// ECDSA P-256 for the TLS certs (generation takes milliseconds), RSA for tokens (RS256 is what
// real clusters publish in their JWKS, so token validators see the common case).
// @peculiar/x509 resolves its algorithms through tsyringe, which needs the Reflect metadata API.
import 'reflect-metadata';
import { generateKeyPairSync, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

export interface CertAndKey {
  certPem: string;
  keyPem: string;
}

export interface ControlPlanePki {
  ca: CertAndKey;
  /** Serving cert of kube-apiserver (127.0.0.1, ::1, localhost and the in-cluster names). */
  apiserver: CertAndKey;
  /** Client cert with O=system:masters: the kubeconfig's user. */
  admin: CertAndKey;
  /** PKCS#8 RSA key that signs service-account tokens, and its SPKI public key. */
  serviceAccountKeyPem: string;
  serviceAccountPublicKeyPem: string;
  /** Serving cert of the real node's kubelet, when `kubeletServing` was given. */
  kubelet?: CertAndKey;
}

export interface PkiOptions {
  /** IP addresses the serving cert must carry besides loopback (e.g. the kubernetes Service IP). */
  extraIps?: string[];
  /** DNS names the serving cert must carry besides localhost. */
  extraDnsNames?: string[];
  /** Also issue a kubelet serving cert for this node name and these addresses. */
  kubeletServing?: { nodeName: string; ips: string[] };
}

type KeyPair = webcrypto.CryptoKeyPair;

const ecdsa = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const signingAlgorithm = { name: 'ECDSA', hash: 'SHA-256' } as const;
const validForMs = 10 * 365 * 24 * 3600 * 1000;
// Backdated so a clock a little behind the host's (or a cert made at the top of a second) is valid.
const backdateMs = 60 * 60 * 1000;

async function newKeys(): Promise<KeyPair> {
  return (await webcrypto.subtle.generateKey(ecdsa, true, ['sign', 'verify'])) as KeyPair;
}

async function privateKeyPem(key: webcrypto.CryptoKey): Promise<string> {
  const der = await webcrypto.subtle.exportKey('pkcs8', key);
  return x509.PemConverter.encode(der, 'PRIVATE KEY');
}

function validity(): { notBefore: Date; notAfter: Date } {
  const now = Date.now();
  return { notBefore: new Date(now - backdateMs), notAfter: new Date(now + validForMs) };
}

interface Issuer {
  cert: x509.X509Certificate;
  keys: KeyPair;
}

async function createCa(commonName: string): Promise<Issuer> {
  const keys = await newKeys();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    name: `CN=${commonName}`,
    keys,
    signingAlgorithm,
    ...validity(),
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { cert, keys };
}

async function issueLeaf(
  issuer: Issuer,
  subject: string,
  usage: 'server' | 'client',
  names: x509.JsonGeneralNames = [],
): Promise<CertAndKey> {
  const keys = await newKeys();
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
    new x509.ExtendedKeyUsageExtension(
      [usage === 'server' ? x509.ExtendedKeyUsage.serverAuth : x509.ExtendedKeyUsage.clientAuth],
      false,
    ),
    await x509.AuthorityKeyIdentifierExtension.create(issuer.keys.publicKey),
  ];
  if (names.length > 0) extensions.push(new x509.SubjectAlternativeNameExtension(names, false));
  const cert = await x509.X509CertificateGenerator.create({
    subject,
    issuer: issuer.cert.subject,
    publicKey: keys.publicKey,
    signingKey: issuer.keys.privateKey,
    signingAlgorithm,
    ...validity(),
    extensions,
  });
  return { certPem: cert.toString('pem'), keyPem: await privateKeyPem(keys.privateKey) };
}

/** A fresh CA, apiserver serving cert, admin client cert and service-account signing key. */
export async function generateControlPlanePki(options: PkiOptions = {}): Promise<ControlPlanePki> {
  const ca = await createCa('chaperone-test-env-ca');
  const dnsNames = [
    'localhost',
    'kubernetes',
    'kubernetes.default',
    'kubernetes.default.svc',
    'kubernetes.default.svc.cluster.local',
    ...(options.extraDnsNames ?? []),
  ];
  const ips = ['127.0.0.1', '::1', ...(options.extraIps ?? [])];
  const names: x509.JsonGeneralNames = [
    ...dnsNames.map((value) => ({ type: 'dns' as const, value })),
    ...ips.map((value) => ({ type: 'ip' as const, value })),
  ];
  const [apiserver, admin] = await Promise.all([
    issueLeaf(ca, 'CN=kube-apiserver', 'server', names),
    issueLeaf(ca, 'CN=chaperone-test-admin, O=system:masters', 'client'),
  ]);
  const kubeletServing = options.kubeletServing;
  const kubelet = kubeletServing
    ? await issueLeaf(ca, `CN=system:node:${kubeletServing.nodeName}, O=system:nodes`, 'server', [
        { type: 'dns', value: kubeletServing.nodeName },
        ...kubeletServing.ips.map((value) => ({ type: 'ip' as const, value })),
      ])
    : undefined;
  const sa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return {
    ca: { certPem: ca.cert.toString('pem'), keyPem: await privateKeyPem(ca.keys.privateKey) },
    apiserver,
    admin,
    serviceAccountKeyPem: sa.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    serviceAccountPublicKeyPem: sa.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    ...(kubelet ? { kubelet } : {}),
  };
}

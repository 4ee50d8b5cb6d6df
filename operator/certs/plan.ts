// What the webhook's certificates need, decided by a pure function of the Secrets' contents and the
// clock. CA rotation keeps the previous CA in the published bundle until it expires, so clients
// that still trust only the old CA and servers that still serve the old cert both keep working
// during the overlap.
import { type CertFacts, inspectCert, issuedBy, keyMatchesCert, splitPemBundle } from './pki.ts';

export const CA_SECRET_KEYS = { cert: 'ca.crt', key: 'ca.key', previous: 'previous-ca.crt' } as const;
export const TLS_SECRET_KEYS = { cert: 'tls.crt', key: 'tls.key', ca: 'ca.crt' } as const;

export interface CertSettings {
  dnsNames: readonly string[];
  ipAddresses: readonly string[];
  caLifetimeMs: number;
  servingLifetimeMs: number;
  renewAtFraction: number;
}

export interface CertPlan {
  /** keep the CA, create the first one, or rotate to a new one (keeping the old one trusted). */
  ca: 'keep' | 'create' | 'rotate';
  serving: 'keep' | 'issue';
  /** Previous CAs still trusted (not expired), PEM each. */
  previousCas: string[];
  reasons: string[];
}

export function renewAt(facts: Pick<CertFacts, 'notBefore' | 'notAfter'>, fraction: number): Date {
  const start = facts.notBefore.getTime();
  return new Date(start + (facts.notAfter.getTime() - start) * fraction);
}

/** The desired DNS names of the webhook's serving certificate. */
export function webhookDnsNames(
  serviceName: string,
  namespace: string,
  extra: readonly string[] = [],
): string[] {
  return [
    serviceName,
    `${serviceName}.${namespace}`,
    `${serviceName}.${namespace}.svc`,
    `${serviceName}.${namespace}.svc.cluster.local`,
    ...extra,
  ];
}

function coversExactly(facts: CertFacts, settings: CertSettings): boolean {
  const names = facts.dnsNames.length + facts.ipAddresses.length;
  if (names !== settings.dnsNames.length + settings.ipAddresses.length) return false;
  return (
    settings.dnsNames.every((name) => facts.x509.checkHost(name) !== undefined) &&
    settings.ipAddresses.every((ip) => facts.x509.checkIP(ip) !== undefined)
  );
}

export function planCertificates(
  caData: Record<string, string> | undefined,
  tlsData: Record<string, string> | undefined,
  settings: CertSettings,
  now: Date,
): CertPlan {
  const reasons: string[] = [];
  const ca = inspectCert(caData?.[CA_SECRET_KEYS.cert]);
  let caAction: CertPlan['ca'] = 'keep';
  if (!ca || !keyMatchesCert(caData?.[CA_SECRET_KEYS.key], ca.x509) || now >= ca.notAfter) {
    caAction = 'create';
    reasons.push(ca ? 'CA unusable or expired' : 'no CA yet');
  } else if (now >= renewAt(ca, settings.renewAtFraction)) {
    caAction = 'rotate';
    reasons.push('CA due for renewal');
  }

  const previousCas = splitPemBundle(caData?.[CA_SECRET_KEYS.previous] ?? '').filter((pem) => {
    const facts = inspectCert(pem);
    return facts !== undefined && now < facts.notAfter;
  });
  if (caAction === 'rotate' && ca) previousCas.unshift(caData![CA_SECRET_KEYS.cert]!);

  let serving: CertPlan['serving'] = 'keep';
  const tls = inspectCert(tlsData?.[TLS_SECRET_KEYS.cert]);
  if (caAction !== 'keep') {
    serving = 'issue';
  } else if (!tls || !keyMatchesCert(tlsData?.[TLS_SECRET_KEYS.key], tls.x509)) {
    serving = 'issue';
    reasons.push('no usable serving certificate');
  } else if (!issuedBy(tls.x509, ca!.x509)) {
    serving = 'issue';
    reasons.push('serving certificate not signed by the current CA');
  } else if (!coversExactly(tls, settings)) {
    serving = 'issue';
    reasons.push('serving certificate names changed');
  } else if (now >= renewAt(tls, settings.renewAtFraction)) {
    serving = 'issue';
    reasons.push('serving certificate due for renewal');
  }
  return { ca: caAction, serving, previousCas, reasons };
}

/** The trust bundle published as ca.crt and caBundle: current CA first, then still-valid previous ones. */
export function caBundle(currentCaPem: string, previousCas: readonly string[]): string {
  const seen = new Set<string>();
  return [currentCaPem, ...previousCas]
    .map((pem) => (pem.endsWith('\n') ? pem : `${pem}\n`))
    .filter((pem) => {
      if (seen.has(pem)) return false;
      seen.add(pem);
      return true;
    })
    .join('');
}

/**
 * When the next look is due: the earliest renewal of the certificates in use, or the expiry of a
 * previous CA (which then leaves the bundle). Only future times count.
 */
export function nextCheck(
  inUse: readonly string[],
  previousCas: readonly string[],
  fraction: number,
  now: Date,
): Date | undefined {
  const times: number[] = [];
  for (const pem of inUse) {
    const facts = inspectCert(pem);
    if (facts) times.push(renewAt(facts, fraction).getTime());
  }
  for (const pem of previousCas) {
    const facts = inspectCert(pem);
    if (facts) times.push(facts.notAfter.getTime());
  }
  const future = times.filter((t) => t > now.getTime());
  return future.length === 0 ? undefined : new Date(Math.min(...future));
}

import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { generateCa, issueServingCert, type KeyPairPem } from './pki.ts';
import { type CertSettings, caBundle, nextCheck, planCertificates, webhookDnsNames } from './plan.ts';

const t0 = new Date('2030-01-01T00:00:00Z');
const at = (seconds: number) => new Date(t0.getTime() + seconds * 1000);
const settings: CertSettings = {
  dnsNames: webhookDnsNames('chaperone-webhook', 'chaperone-system'),
  ipAddresses: ['127.0.0.1'],
  caLifetimeMs: 3000_000,
  servingLifetimeMs: 300_000,
  renewAtFraction: 2 / 3,
};

describe('planCertificates', () => {
  let ca: KeyPairPem;
  let serving: KeyPairPem;
  const caData = () => ({ 'ca.crt': ca.certPem, 'ca.key': ca.keyPem });
  const tlsData = () => ({ 'tls.crt': serving.certPem, 'tls.key': serving.keyPem, 'ca.crt': ca.certPem });

  before(async () => {
    ca = await generateCa({ commonName: 'ca', notBefore: t0, notAfter: at(3000) });
    serving = await issueServingCert({
      ca,
      commonName: 'svc',
      dnsNames: settings.dnsNames,
      ipAddresses: settings.ipAddresses,
      notBefore: t0,
      notAfter: at(300),
    });
  });

  it('creates everything from nothing', () => {
    const plan = planCertificates(undefined, undefined, settings, at(1));
    assert.equal(plan.ca, 'create');
    assert.equal(plan.serving, 'issue');
  });

  it('keeps fresh certificates', () => {
    const plan = planCertificates(caData(), tlsData(), settings, at(10));
    assert.deepEqual([plan.ca, plan.serving, plan.previousCas], ['keep', 'keep', []]);
  });

  it('renews the serving certificate after 2/3 of its lifetime', () => {
    assert.equal(planCertificates(caData(), tlsData(), settings, at(199)).serving, 'keep');
    assert.equal(planCertificates(caData(), tlsData(), settings, at(201)).serving, 'issue');
  });

  it('reissues when names change or the key does not match', () => {
    const moreNames = { ...settings, ipAddresses: ['127.0.0.1', '::1'] };
    assert.equal(planCertificates(caData(), tlsData(), moreNames, at(10)).serving, 'issue');
    const wrongKey = { ...tlsData(), 'tls.key': ca.keyPem };
    assert.equal(planCertificates(caData(), wrongKey, settings, at(10)).serving, 'issue');
  });

  it('rotates the CA after 2/3 of its lifetime and keeps the old one trusted until it expires', () => {
    const plan = planCertificates(caData(), tlsData(), settings, at(2001));
    assert.equal(plan.ca, 'rotate');
    assert.equal(plan.serving, 'issue');
    assert.deepEqual(plan.previousCas, [ca.certPem]);
    const later = { 'ca.crt': 'new', 'ca.key': 'new', 'previous-ca.crt': ca.certPem };
    assert.deepEqual(planCertificates(later, undefined, settings, at(2500)).previousCas, [ca.certPem]);
    assert.deepEqual(planCertificates(later, undefined, settings, at(3001)).previousCas, []);
  });

  it('bundles current CA first without duplicates', () => {
    assert.equal(caBundle('A\n', ['B', 'A\n']), 'A\nB\n');
  });

  it('schedules the next look at the earliest renewal in the future', () => {
    assert.deepEqual(nextCheck([ca.certPem, serving.certPem], [], 2 / 3, at(10)), at(200));
    assert.deepEqual(nextCheck([ca.certPem], [serving.certPem], 2 / 3, at(10)), at(300));
    assert.equal(nextCheck([serving.certPem], [], 2 / 3, at(400)), undefined);
  });
});

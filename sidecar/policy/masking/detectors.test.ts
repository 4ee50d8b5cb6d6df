import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  creditCardDetector,
  customDetector,
  type Detector,
  emailDetector,
  ibanDetector,
  nationalIdDetector,
} from './detectors.ts';

function found(detector: Detector, text: string): string[] {
  const bytes = Buffer.from(text, 'utf8');
  const spans: string[] = [];
  detector.scan(bytes, (start, end) => spans.push(bytes.subarray(start, end).toString('utf8')));
  return spans;
}

describe('creditCardDetector', () => {
  const cards = creditCardDetector();
  it('finds Luhn-valid numbers of 13 to 19 digits, plain or grouped', () => {
    assert.deepEqual(found(cards, '4111111111111111'), ['4111111111111111']);
    assert.deepEqual(found(cards, '4111 1111 1111 1111'), ['4111 1111 1111 1111']);
    assert.deepEqual(found(cards, '5500-0000-0000-0004'), ['5500-0000-0000-0004']);
    assert.deepEqual(found(cards, 'amex 3782 822463 10005.'), ['3782 822463 10005']);
    assert.deepEqual(found(cards, '4222222222222'), ['4222222222222'], '13-digit visa');
    assert.deepEqual(found(cards, '6304000000000000000'), ['6304000000000000000'], '19-digit maestro');
  });
  it('does not take invalid checksums, too long runs or digits glued to words', () => {
    assert.deepEqual(found(cards, '4111111111111112'), []);
    assert.deepEqual(found(cards, '41111111111111111113'), [], '20 digits');
    assert.deepEqual(found(cards, 'id4111111111111111'), []);
    assert.deepEqual(found(cards, '4111111111111111x'), []);
    assert.deepEqual(found(cards, '123456789012'), [], '12 digits');
    assert.deepEqual(found(cards, 'order 1234567890123456 shipped'), [], 'random 16 digits, Luhn invalid');
  });
  it('finds cards inside text next to other numbers', () => {
    assert.deepEqual(found(cards, 'on 2024-01-15 4111 1111 1111 1111 was charged'), ['4111 1111 1111 1111']);
    assert.deepEqual(found(cards, '{"a":4111111111111111,"b":"5500 0000 0000 0004"}'), [
      '4111111111111111',
      '5500 0000 0000 0004',
    ]);
    assert.deepEqual(
      found(cards, 'é4111111111111111ü'),
      ['4111111111111111'],
      'non-ASCII neighbours are not letters here',
    );
  });
});

describe('emailDetector', () => {
  const email = emailDetector();
  it('finds addresses in text', () => {
    assert.deepEqual(found(email, 'write to john.doe+x@example.co.uk.'), ['john.doe+x@example.co.uk']);
    assert.deepEqual(found(email, 'a@b.io, c_d@e-f.example'), ['a@b.io', 'c_d@e-f.example']);
  });
  it('ignores things that are not addresses', () => {
    assert.deepEqual(found(email, 'user@localhost'), []);
    assert.deepEqual(found(email, '@ 1.2.3'), []);
    assert.deepEqual(found(email, 'no at sign here'), []);
  });
});

describe('ibanDetector', () => {
  const iban = ibanDetector();
  it('finds IBANs with a valid mod-97 checksum, printed or electronic', () => {
    assert.deepEqual(found(iban, 'DE89 3704 0044 0532 0130 00'), ['DE89 3704 0044 0532 0130 00']);
    assert.deepEqual(found(iban, 'IBAN: DE89370400440532013000.'), ['DE89370400440532013000']);
    assert.deepEqual(found(iban, 'GB82 WEST 1234 5698 7654 32 AND MORE'), ['GB82 WEST 1234 5698 7654 32']);
    assert.deepEqual(found(iban, 'NO9386011117947'), ['NO9386011117947']);
    assert.deepEqual(found(iban, 'FR1420041010050500013M02606'), ['FR1420041010050500013M02606']);
  });
  it('rejects bad checksums, wrong lengths and unknown countries', () => {
    assert.deepEqual(found(iban, 'DE89370400440532013001'), []);
    assert.deepEqual(found(iban, 'DE8937040044053201300'), [], 'one short');
    assert.deepEqual(found(iban, 'DE893704004405320130000'), [], 'one long');
    assert.deepEqual(found(iban, 'ZZ89370400440532013000'), []);
  });
});

describe('nationalIdDetector (US SSN)', () => {
  const ssn = nationalIdDetector();
  it('finds dashed SSNs', () => {
    assert.deepEqual(found(ssn, 'ssn 123-45-6789, ok'), ['123-45-6789']);
    assert.deepEqual(found(ssn, '078-05-1120'), ['078-05-1120']);
  });
  it('follows the SSA rules and word boundaries', () => {
    for (const invalid of ['000-12-3456', '666-12-3456', '900-12-3456', '123-00-4567', '123-45-0000']) {
      assert.deepEqual(found(ssn, invalid), [], invalid);
    }
    assert.deepEqual(found(ssn, '123-45-67890'), []);
    assert.deepEqual(found(ssn, '1-123-45-6789'), []);
    assert.deepEqual(found(ssn, '123-45-6789-1'), []);
    assert.deepEqual(found(ssn, '2024-01-15'), []);
    assert.deepEqual(found(ssn, '123456789'), [], 'undashed is not detected');
  });
});

describe('customDetector', () => {
  it('masks every RE2 match, on UTF-8 byte offsets', () => {
    const emp = customDetector('EMP-[0-9]{6}');
    assert.deepEqual(found(emp, 'Ünïcødé EMP-123456 and EMP-654321'), ['EMP-123456', 'EMP-654321']);
  });
  it('never loops on empty matches', () => {
    assert.deepEqual(found(customDetector('x*'), 'abxxc'), ['xx']);
  });
  it('stays linear on patterns that backtrack catastrophically elsewhere', () => {
    const evil = customDetector('(a+)+$');
    assert.deepEqual(found(evil, `${'a'.repeat(50_000)}!`), []);
  });
});

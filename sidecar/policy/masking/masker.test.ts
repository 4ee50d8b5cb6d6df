import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { describe, it } from 'node:test';
import { maskingSchema } from '../../../crds/index.ts';
import { type ColumnInfo, createMasker, PG_TYPE } from './masker.ts';

const text = (name: string, dataTypeID: number = PG_TYPE.text): ColumnInfo => ({
  name,
  dataTypeID,
  format: 'text',
});
const binary = (name: string, dataTypeID: number): ColumnInfo => ({ name, dataTypeID, format: 'binary' });
const cells = (...values: (string | null)[]) =>
  values.map((v) => (v === null ? null : Buffer.from(v, 'utf8')));
const strings = (values: (Buffer | null)[]) => values.map((v) => (v === null ? null : v.toString('utf8')));

const allDetectors = maskingSchema.parse({
  detectors: [
    { type: 'creditCard' },
    { type: 'email' },
    { type: 'iban' },
    { type: 'nationalId' },
    { type: 'custom', pattern: 'EMP-[0-9]{6}' },
  ],
});

describe('createMasker detectors', () => {
  const masker = createMasker(allDetectors);

  it('masks a Luhn-valid card number but not an invalid-Luhn digit string, and counts cells', () => {
    const rows = masker.forColumns([text('note'), text('ref'), text('other')]);
    const input = cells('paid with 4111 1111 1111 1111 yesterday', '4111111111111112', 'nothing here');
    const { values, maskedCells } = rows.maskRow(input);
    assert.deepEqual(strings(values), ['paid with **** yesterday', '4111111111111112', 'nothing here']);
    assert.equal(maskedCells, 1);
    assert.notEqual(values, input, 'a new array when something changed');
    assert.equal(values[1], input[1], 'untouched cells are passed through');
    assert.equal(strings(input)[0], 'paid with 4111 1111 1111 1111 yesterday', 'input buffers not modified');
  });

  it('masks email, IBAN, SSN and custom spans inside longer text, keeping UTF-8 around them', () => {
    const rows = masker.forColumns([text('body')]);
    const { values, maskedCells } = rows.maskRow(
      cells(
        'Grüße: mail jöhn@example.com, IBAN DE89 3704 0044 0532 0130 00, SSN 123-45-6789, id EMP-004711.',
      ),
    );
    assert.deepEqual(strings(values), ['Grüße: mail ****, IBAN ****, SSN ****, id ****.']);
    assert.equal(maskedCells, 1, 'one cell, however many spans');
  });

  it('returns the same array and allocates no copy when nothing matches', () => {
    const rows = masker.forColumns([text('a'), text('b')]);
    const input = cells('hello world', null);
    const result = rows.maskRow(input);
    assert.equal(result.values, input);
    assert.equal(result.maskedCells, 0);
  });

  it('keeps JSON valid when a card is a JSON number, and masks inside JSON strings', () => {
    const rows = masker.forColumns([text('doc', PG_TYPE.json)]);
    const { values } = rows.maskRow(cells('{"card":4111111111111111,"mail":"a@example.com"}'));
    const masked = strings(values)[0]!;
    assert.deepEqual(JSON.parse(masked), { card: '****', mail: '****' });
  });

  it('skips types that cannot hold detected values and scans numeric ones', () => {
    const rows = masker.forColumns([
      text('n', PG_TYPE.int4),
      text('big', PG_TYPE.numeric),
      text('d', PG_TYPE.date),
    ]);
    const { values, maskedCells } = rows.maskRow(cells('123', '4111111111111111', '2024-01-15'));
    assert.deepEqual(strings(values), ['123', '****', '2024-01-15']);
    assert.equal(maskedCells, 1);
  });

  it('scans binary text-like cells and leaves other binary cells as they are', () => {
    const rows = masker.forColumns([
      binary('t', PG_TYPE.varchar),
      binary('n', PG_TYPE.int8),
      binary('j', PG_TYPE.jsonb),
    ]);
    assert.equal(rows.plans[1], null);
    const int8 = Buffer.alloc(8);
    int8.writeBigInt64BE(4111111111111111n);
    const jsonb = Buffer.concat([Buffer.from([1]), Buffer.from('{"c": "4111111111111111"}')]);
    const { values, maskedCells } = rows.maskRow([Buffer.from('x 4111111111111111'), int8, jsonb]);
    assert.equal(values[0]!.toString(), 'x ****');
    assert.equal(values[1], int8);
    assert.equal(values[2]![0], 1, 'jsonb version byte kept');
    assert.equal(values[2]!.subarray(1).toString(), '{"c": "****"}');
    assert.equal(maskedCells, 2);
  });
});

describe('createMasker column names', () => {
  const masker = createMasker(
    maskingSchema.parse({
      columns: [
        { pattern: '(?i)^(ssn|password)$' },
        { pattern: 'card_number', strategy: 'partial' },
        { pattern: '^email$', strategy: 'hash' },
        { pattern: 'profile', strategy: 'redact' },
      ],
      detectors: [{ type: 'creditCard' }],
    }),
    { hashKey: Buffer.from('k') },
  );

  it('masks whole values by column name with each strategy', () => {
    const rows = masker.forColumns([
      text('id', PG_TYPE.int4),
      text('SSN'),
      text('card_number'),
      text('email'),
      text('short_card_number'),
    ]);
    const { values, maskedCells } = rows.maskRow(
      cells('7', '078-05-1120', '4111 1111 1111 1234', 'ann@example.com', '1234567'),
    );
    const expectedHash = `#${createHmac('sha256', 'k').update('ann@example.com').digest('hex').slice(0, 16)}`;
    assert.deepEqual(strings(values), ['7', '****', '**** **** **** 1234', expectedHash, '****']);
    assert.equal(maskedCells, 4);
    assert.deepEqual(rows.plans[1]?.byName, { pattern: '(?i)^(ssn|password)$', strategy: 'redact' });
  });

  it('hashes equal values equally, so joins still work', () => {
    const rows = masker.forColumns([text('email')]);
    const a = rows.maskRow(cells('ann@example.com')).values[0]!.toString();
    const b = rows.maskRow(cells('ann@example.com')).values[0]!.toString();
    const c = rows.maskRow(cells('bob@example.com')).values[0]!.toString();
    assert.equal(a, b);
    assert.notEqual(a, c);
  });

  it('keeps a masked json column valid JSON', () => {
    const rows = masker.forColumns([text('profile', PG_TYPE.json), binary('profile', PG_TYPE.jsonb)]);
    const { values } = rows.maskRow([
      Buffer.from('{"a":1}'),
      Buffer.concat([Buffer.from([1]), Buffer.from('{"a":1}')]),
    ]);
    assert.equal(values[0]!.toString(), '"****"');
    assert.deepEqual([...values[1]!], [1, ...Buffer.from('"****"')]);
  });

  it('turns a binary non-text cell of a masked column into NULL', () => {
    const rows = masker.forColumns([binary('ssn', PG_TYPE.int8), binary('password', PG_TYPE.text)]);
    const { values, maskedCells } = rows.maskRow([Buffer.alloc(8, 1), Buffer.from('hunter2')]);
    assert.equal(values[0], null);
    assert.equal(values[1]!.toString(), '****');
    assert.equal(maskedCells, 2);
  });

  it('is inactive when no column can be masked', () => {
    const rows = masker.forColumns([text('id', PG_TYPE.int4), binary('blob', PG_TYPE.bytea)]);
    assert.equal(rows.active, false);
    const input = cells('1', 'x');
    assert.equal(rows.maskRow(input).values, input);
  });

  it('a masker without rules is never active', () => {
    const rows = createMasker(maskingSchema.parse({})).forColumns([text('anything')]);
    assert.equal(rows.active, false);
  });
});

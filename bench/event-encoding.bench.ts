// Is a hand-written template for the gateway's per-statement events (pg.query, pg.result) cheaper
// than JSON.stringify of their payload objects? Both produce the same bytes; each is then written
// into a buffer as the journal does (the template's concatenated string is flattened there).
// Answer on this machine (docs/benchmarks.md, "Hot path, fourth round"): no, V8's JSON.stringify of
// small flat objects wins, so the recorder keeps the generic path.
//   node bench/event-encoding.bench.ts [--rounds 4] [--statements 1000000]
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: { rounds: { type: 'string', default: '4' }, statements: { type: 'string', default: '1000000' } },
});
const rounds = Number(values.rounds);
const n = Number(values.statements);
const sql = 'SELECT abalance FROM pgbench_accounts WHERE aid = 48213;';
const columns = ['abalance'];
const columnsJson = JSON.stringify(columns);
const out = Buffer.allocUnsafe(4096);

function generic(i: number): number {
  const query = JSON.stringify({ sql, protocol: 'simple' });
  const result = JSON.stringify({
    commandTag: 'SELECT 1',
    rows: 1,
    durationMs: 0.123 + i * 1e-9,
    maskedCells: 0,
    columns,
    rowsSample: [[String(i % 10000)]],
  });
  return out.write(query, 0) + out.write(result, 1024);
}

function template(i: number): number {
  const query = `{"sql":${JSON.stringify(sql)},"protocol":"simple"}`;
  const result = `{"commandTag":${JSON.stringify('SELECT 1')},"rows":${1},"durationMs":${0.123 + i * 1e-9},"maskedCells":${0},"columns":${columnsJson},"rowsSample":${JSON.stringify([[String(i % 10000)]])}}`;
  return out.write(query, 0) + out.write(result, 1024);
}

if (generic(7) !== template(7)) throw new Error('the two encodings differ in length');
let sink = 0;
for (let r = 0; r < rounds; r++) {
  const row: string[] = [];
  for (const [name, f] of [
    ['JSON.stringify', generic],
    ['template', template],
  ] as const) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) sink += f(i);
    row.push(`${name} ${(Number(process.hrtime.bigint() - t0) / n).toFixed(0)} ns`);
  }
  process.stdout.write(
    `round ${r + 1}: ${row.join(', ')} per statement (pg.query + pg.result, encoded and written)\n`,
  );
}
if (sink < 0) process.stdout.write(`${sink}\n`);

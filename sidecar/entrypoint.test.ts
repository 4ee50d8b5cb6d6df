// The sidecar's Node flags keep the SQL parser's memory flat: a child process started as the image
// starts the sidecar classifies thousands of statements (the WebAssembly parser gets hot, which is
// when V8 would tier it up with TurboFan) and reports its peak RSS. Without `--liftoff-only` the peak
// was 640-670 MiB on this machine (the TurboFan compilation of libpg_query); with it, about 100 MiB.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { SIDECAR_IMAGE_ENV, SIDECAR_NODE_FLAGS } from './entrypoint.ts';

const exec = promisify(execFile);
const classify = new URL('./policy/sql/classify.ts', import.meta.url).href;

/** Loads the parser, classifies `count` distinct statements, prints peak RSS (VmHWM) in KiB. */
const CHILD = `
import { readFileSync } from 'node:fs';
const { classifySql, loadSqlParser } = await import(${JSON.stringify(classify)});
await loadSqlParser();
const shapes = [
  'SELECT id, name FROM customers ORDER BY id',
  'DROP TABLE customers',
  "WITH x AS (DELETE FROM orders WHERE created < now() - interval '1 day' RETURNING *) SELECT count(*) FROM x",
  'INSERT INTO t (a, b) VALUES ($1, $2) ON CONFLICT (a) DO UPDATE SET b = excluded.b',
];
for (let i = 0; i < Number(process.argv[1]); i++) classifySql(shapes[i % shapes.length] + ' -- ' + i);
process.stdout.write(/VmHWM:\\s+(\\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))[1]);
`;

test('the sidecar flags keep the SQL parser under 256 MiB peak RSS while it gets hot', async () => {
  const { stdout } = await exec(
    process.execPath,
    [...SIDECAR_NODE_FLAGS, '--input-type=module', '-e', CHILD, '20000'],
    { env: { ...process.env, ...SIDECAR_IMAGE_ENV } },
  );
  const peakMiB = Number(stdout) / 1024;
  assert.ok(peakMiB > 0, `no peak RSS reported: ${stdout}`);
  assert.ok(peakMiB < 256, `peak RSS ${peakMiB.toFixed(0)} MiB with ${SIDECAR_NODE_FLAGS.join(' ')}`);
});

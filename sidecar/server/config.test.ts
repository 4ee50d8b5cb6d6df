import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigError, parseConfig } from './config.ts';

const minimal = {
  apiVersion: 'chaperone.dev/sidecar-v1',
  policy: { name: 'p' },
  targets: [{ name: 'db', protocol: 'postgres', upstream: { host: 'db', port: 5432 }, listenPort: 15432 }],
  recording: { store: { url: 'file:///tmp/x' }, signingKeyFile: '/k', spoolDir: '/s' },
};

test('JSON and YAML configs parse to the same defaults-filled config', () => {
  const fromJson = parseConfig(JSON.stringify(minimal), 'c.json');
  const yaml = `apiVersion: chaperone.dev/sidecar-v1
policy: { name: p }
targets:
  - { name: db, protocol: postgres, upstream: { host: db, port: 5432 }, listenPort: 15432 }
recording: { store: { url: "file:///tmp/x" }, signingKeyFile: /k, spoolDir: /s }
`;
  assert.deepEqual(parseConfig(yaml, 'c.yaml'), fromJson);
  assert.equal(fromJson.listenHost, '127.0.0.1');
  assert.equal(fromJson.identity.tokenRequired, true);
  assert.equal(fromJson.targets[0]!.tls.mode, 'disable');
});

test('errors name the file and the offending path', () => {
  assert.throws(
    () => parseConfig('{', 'c.json'),
    (e: Error) => e instanceof ConfigError && /c\.json: not valid JSON/.test(e.message),
  );
  assert.throws(() => parseConfig('a: [', 'c.yaml'), /c\.yaml: not valid YAML/);
  const bad = { ...minimal, targets: [{ ...minimal.targets[0], listenPort: 80 }] };
  assert.throws(
    () => parseConfig(JSON.stringify(bad), 'c.json'),
    /invalid sidecar config:[\s\S]*targets\[0\]\.listenPort/,
  );
});

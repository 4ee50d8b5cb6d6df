// The chart offline: helm lint --strict, golden renders for every charts/testdata/*.values.yaml
// (and the defaults), the generated files (values.schema.json, CRD copies, docs/install.md values
// reference) against their generator, values.yaml against the zod schema, refusal of bad values by
// helm itself, and the webhook configurations against webhook/webhook-configurations.ts.
import assert from 'node:assert/strict';
import { createPrivateKey } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { parse, parseAllDocuments } from 'yaml';
import { parseOperatorConfig } from '../operator/config.ts';
import { parseWebhookConfig } from '../webhook/config.ts';
import { renderWebhookConfigurations } from '../webhook/webhook-configurations.ts';
import {
  CHART_DIR,
  chartCrdFiles,
  INSTALL_DOC,
  renderValuesSchema,
  withValuesReference,
} from './schema/generate.ts';
import { valuesSchema } from './schema/values.ts';
import { assertGolden, TESTDATA, updating } from './testing/golden.ts';
import { helm, notes, redactKeys, template } from './testing/helm.ts';

// biome-ignore lint/suspicious/noExplicitAny: the tests walk rendered manifests
type Json = any;
const NS = 'chaperone-system';
const cases = readdirSync(TESTDATA)
  .filter((f) => f.endsWith('.values.yaml'))
  .map((f) => f.slice(0, -'.values.yaml'.length));
const tmp = await mkdtemp(join(tmpdir(), 'chart-test-'));
after(() => rm(tmp, { recursive: true, force: true }));

function docs(manifest: string): Json[] {
  return parseAllDocuments(manifest)
    .map((d) => d.toJS())
    .filter((d) => d);
}

function valuesArgs(name: string): string[] {
  return name === 'default' ? [] : [join(TESTDATA, `${name}.values.yaml`)];
}

async function rendered(name: string): Promise<Json[]> {
  const out = await template(NS, valuesArgs(name));
  assert.ok(out.ok, out.stderr);
  return docs(out.stdout);
}

describe('chart', () => {
  it('has test cases besides the defaults', () => {
    assert.deepEqual(cases.sort(), ['cert-manager', 'production']);
  });

  for (const name of ['default', ...cases]) {
    it(`helm lint --strict is clean: ${name}`, async () => {
      const files = valuesArgs(name).flatMap((f) => ['-f', f]);
      const out = await helm(['lint', '--strict', CHART_DIR, '--namespace', NS, ...files]);
      assert.ok(out.ok, `${out.stdout}${out.stderr}`);
      assert.match(out.stdout, /1 chart\(s\) linted, 0 chart\(s\) failed/);
    });

    it(`renders the golden manifests: ${name}`, async () => {
      const out = await template(NS, valuesArgs(name));
      assert.ok(out.ok, out.stderr);
      await assertGolden(`${name}.golden.yaml`, redactKeys(out.stdout));
    });
  }

  it('NOTES.txt names the next three commands, in the release namespace', async () => {
    const text = await notes('team-chaperone', [join(TESTDATA, 'production.values.yaml')]);
    const commands = text.split('\n').filter((l) => l.startsWith('  kubectl '));
    assert.equal(commands.length, 3, text);
    assert.match(
      commands[0]!,
      /^ {2}kubectl -n team-chaperone wait --for=condition=Available .*chaperone-webhook$/,
    );
    assert.match(commands[1]!, /get sessionpolicies$/);
    assert.match(commands[2]!, /label namespace <agents> chaperone\.dev\/recording=enabled$/);
    assert.match(text, /chaperone-signing-key \(key privateKey\) in team-chaperone and agents-a, agents-b/);
  });

  it('leaves no golden file unused', () => {
    const goldens = readdirSync(TESTDATA).filter((f) => f.endsWith('.golden.yaml'));
    assert.deepEqual(goldens.sort(), ['default', ...cases].map((c) => `${c}.golden.yaml`).sort());
  });
});

describe('generated files', () => {
  it('values.schema.json is the output of charts/schema/generate.ts', async () => {
    const onDisk = await readFile(join(CHART_DIR, 'values.schema.json'), 'utf8');
    assert.equal(onDisk, renderValuesSchema(), 'run `node charts/schema/generate.ts`');
  });

  it("the chart's CRDs are the output of crds/generate.ts", async () => {
    const files = chartCrdFiles();
    assert.deepEqual(readdirSync(join(CHART_DIR, 'files', 'crds')).sort(), Object.keys(files).sort());
    for (const [file, text] of Object.entries(files)) {
      assert.equal(await readFile(join(CHART_DIR, 'files', 'crds', file), 'utf8'), text, file);
      // And the repository's copy (make crds) is the same text.
      assert.equal(await readFile(join(CHART_DIR, '..', '..', 'crds', file), 'utf8'), text, `crds/${file}`);
    }
  });

  it('docs/install.md holds the generated values reference', async () => {
    const doc = await readFile(INSTALL_DOC, 'utf8');
    if (updating) await writeFile(INSTALL_DOC, withValuesReference(doc));
    assert.equal(doc, withValuesReference(doc), 'run `node charts/schema/generate.ts`');
  });

  it('values.yaml passes the zod schema and states exactly its defaults', async () => {
    const values = parse(await readFile(join(CHART_DIR, 'values.yaml'), 'utf8'));
    assert.deepEqual(valuesSchema.parse(values), valuesSchema.parse({}));
    assert.deepEqual(values, valuesSchema.parse({}), 'values.yaml lists every default, nothing more');
  });

  it('every values file of the tests passes the zod schema', async () => {
    for (const name of cases) {
      const values = parse(await readFile(join(TESTDATA, `${name}.values.yaml`), 'utf8'));
      assert.ok(valuesSchema.safeParse(values).success, name);
    }
  });
});

describe('values refused by helm (values.schema.json)', () => {
  const bad: [string, string, RegExp][] = [
    ['a misspelt key', 'webhook:\n  replica: 3\n', /additional propert(y|ies) 'replica' not allowed/],
    ['one webhook replica', 'webhook:\n  replicas: 1\n', /replicas[\s\S]*minimum/],
    [
      'an unknown certificate mode',
      'certificates:\n  mode: selfSigned\n',
      /mode[\s\S]*(operator|enum|one of)/,
    ],
    [
      'a digest that is not sha256',
      'image:\n  digests:\n    webhook: latest\n',
      /webhook[\s\S]*pattern|match/,
    ],
  ];
  for (const [what, text, message] of bad) {
    it(`refuses ${what}`, async () => {
      const file = join(tmp, `${what.replaceAll(' ', '-')}.yaml`);
      await writeFile(file, text);
      assert.equal(valuesSchema.safeParse(parse(text)).success, false, 'zod refuses it too');
      const out = await template(NS, [file]);
      assert.equal(out.ok, false, 'helm template must fail');
      assert.match(out.stderr, /values don't meet the specifications of the schema/);
      assert.match(out.stderr, message);
    });
  }
});

describe('values refused by the templates (rules JSON Schema cannot state)', () => {
  const bad: [string, string, RegExp][] = [
    [
      'a PodDisruptionBudget that blocks every drain',
      'webhook:\n  replicas: 2\n  pdb:\n    minAvailable: 2\n',
      /webhook\.pdb\.minAvailable \(2\) must be below webhook\.replicas \(2\)/,
    ],
    [
      'a renew deadline longer than the lease',
      'operator:\n  leaderElection:\n    renewDeadlineSeconds: 20\n',
      /retryPeriodSeconds < renewDeadlineSeconds < leaseDurationSeconds/,
    ],
    [
      'an index builder without a store',
      'indexer:\n  enabled: true\n',
      /indexer\.enabled needs indexer\.store\.url/,
    ],
  ];
  for (const [what, text, message] of bad) {
    it(`refuses ${what}`, async () => {
      const file = join(tmp, `${what.replaceAll(' ', '-')}.yaml`);
      await writeFile(file, text);
      const out = await template(NS, [file]);
      assert.equal(out.ok, false, 'helm template must fail');
      assert.match(out.stderr, message);
    });
  }
});

describe('rendered objects', () => {
  it("webhook configurations equal webhook/webhook-configurations.ts's service mode (caBundle aside)", async () => {
    const objects = await rendered('default');
    const expected = renderWebhookConfigurations({
      client: { mode: 'service', namespace: NS, name: 'chaperone-webhook', port: 443 },
      caBundle: '',
      systemNamespace: NS,
    });
    for (const [kind, want] of [
      ['MutatingWebhookConfiguration', expected.mutating],
      ['ValidatingWebhookConfiguration', expected.validating],
    ] as const) {
      const got = objects.find((o) => o.kind === kind);
      assert.ok(got, kind);
      const strip = (hooks: Json[]) =>
        hooks.map((h) => ({ ...h, clientConfig: { ...h.clientConfig, caBundle: undefined } }));
      assert.deepEqual(
        JSON.parse(JSON.stringify(strip(got.webhooks))),
        JSON.parse(JSON.stringify(strip(want.webhooks as Json[]))),
        kind,
      );
      assert.equal(
        got.metadata.labels['app.kubernetes.io/part-of'],
        'chaperone',
        'the operator patches caBundle',
      );
    }
  });

  it('renders config files the operator and the webhook accept (their own zod schemas)', async () => {
    for (const name of ['default', ...cases]) {
      const objects = await rendered(name);
      const data = (n: string, key: string) =>
        parse(objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name === n).data[key]);
      const operator = parseOperatorConfig(data('chaperone-operator', 'operator.yaml'));
      assert.equal(operator.systemNamespace, NS, name);
      assert.equal(operator.leaderElection.enabled, true);
      const webhook = parseWebhookConfig(data('chaperone-webhook', 'webhook.yaml'));
      assert.equal(webhook.systemNamespace, NS);
      assert.equal(webhook.tls.source, name === 'cert-manager' ? 'files' : 'secret');
      assert.ok(webhook.operatorUsers.length > 0, 'the operator may write its children');
    }
  });

  it('grants the operator exactly the RBAC operator/README.md lists', async () => {
    const readme = await readFile(join(CHART_DIR, '..', '..', 'operator', 'README.md'), 'utf8');
    const block = /## RBAC the operator needs\n\n```yaml\n([\s\S]*?)```/.exec(readme);
    assert.ok(block, 'operator/README.md has its RBAC block');
    const triples = (rules: Json[]) =>
      new Set(
        rules.flatMap((r) =>
          r.apiGroups.flatMap((g: string) =>
            r.resources.flatMap((res: string) => r.verbs.map((v: string) => `${g}/${res}:${v}`)),
          ),
        ),
      );
    const want = triples(parse(block[1]!).rules);
    const objects = await rendered('default');
    const got = triples(
      objects
        .filter(
          (o) => (o.kind === 'ClusterRole' || o.kind === 'Role') && o.metadata.name === 'chaperone-operator',
        )
        .flatMap((o) => o.rules),
    );
    assert.deepEqual([...got].sort(), [...want].sort());
  });

  it('is hardened: non-root, read-only root, RuntimeDefault seccomp, no capabilities, resources', async () => {
    for (const name of ['default', ...cases]) {
      for (const d of (await rendered(name)).filter((o) => o.kind === 'Deployment')) {
        const pod = d.spec.template.spec;
        assert.equal(pod.securityContext.runAsNonRoot, true, d.metadata.name);
        assert.equal(pod.securityContext.seccompProfile.type, 'RuntimeDefault');
        for (const c of pod.containers) {
          assert.equal(c.securityContext.readOnlyRootFilesystem, true);
          assert.equal(c.securityContext.allowPrivilegeEscalation, false);
          assert.deepEqual(c.securityContext.capabilities.drop, ['ALL']);
          assert.ok(c.resources.requests.cpu && c.resources.requests.memory && c.resources.limits.memory);
        }
      }
    }
  });

  it('pulls by digest when one is given, by tag otherwise', async () => {
    const images = (objects: Json[]) =>
      objects.filter((o) => o.kind === 'Deployment').map((d) => d.spec.template.spec.containers[0].image);
    assert.deepEqual(images(await rendered('default')), [
      'chaperone/operator:0.1.0',
      'chaperone/webhook:0.1.0',
    ]);
    const prod = await rendered('production');
    for (const image of images(prod)) assert.match(image, /^registry\.example\.com\/chaperone\/\w+@sha256:/);
    const config = parse(
      prod.find((o) => o.metadata?.name === 'chaperone-webhook' && o.kind === 'ConfigMap').data[
        'webhook.yaml'
      ],
    );
    assert.match(config.sidecarImage, /\/sidecar@sha256:3{64}$/);
    assert.match(config.initImage, /\/init@sha256:4{64}$/);
  });

  it('generates one Ed25519 signing key, the same in every namespace, kept on uninstall', async () => {
    const secrets = (await rendered('production')).filter(
      (o) => o.kind === 'Secret' && o.metadata.annotations?.['helm.sh/hook'] !== 'test',
    );
    assert.deepEqual(secrets.map((s) => s.metadata.namespace).sort(), ['agents-a', 'agents-b', NS]);
    const keys = new Set(secrets.map((s) => s.data.privateKey));
    assert.equal(keys.size, 1);
    const key = createPrivateKey(Buffer.from([...keys][0], 'base64').toString('utf8'));
    assert.equal(key.asymmetricKeyType, 'ed25519');
    for (const s of secrets) assert.equal(s.metadata.annotations['helm.sh/resource-policy'], 'keep');
  });

  it('keeps CRDs on uninstall unless crds.keep is false', async () => {
    const keep = (objects: Json[]) =>
      objects
        .filter((o) => o.kind === 'CustomResourceDefinition')
        .map((o) => o.metadata.annotations?.['helm.sh/resource-policy']);
    assert.deepEqual(keep(await rendered('default')), ['keep', 'keep']);
    assert.deepEqual(keep(await rendered('cert-manager')), [undefined, undefined]);
  });

  it('with cert-manager, the webhook reads a mounted certificate and cainjector fills caBundle', async () => {
    const objects = await rendered('cert-manager');
    const cert = objects.find((o) => o.kind === 'Certificate');
    assert.deepEqual(cert.spec.issuerRef, {
      name: 'internal-ca',
      kind: 'ClusterIssuer',
      group: 'cert-manager.io',
    });
    assert.equal(objects.filter((o) => o.kind === 'Issuer').length, 0);
    for (const kind of ['MutatingWebhookConfiguration', 'ValidatingWebhookConfiguration']) {
      const c = objects.find((o) => o.kind === kind);
      assert.equal(c.metadata.annotations['cert-manager.io/inject-ca-from'], `${NS}/chaperone-webhook`);
    }
    const operatorRules = objects.find(
      (o) => o.kind === 'ClusterRole' && o.metadata.name === 'chaperone-operator',
    );
    assert.ok(
      !operatorRules.rules.some((r: Json) => r.apiGroups.includes('admissionregistration.k8s.io')),
      'the operator may not patch webhook configurations when cert-manager owns caBundle',
    );
  });
});

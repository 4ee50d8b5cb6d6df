import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { goldenDir } from '../test/testing/golden.ts';
import { renderCrdFiles, sessionApprovalCrd, sessionPolicyCrd } from './generate.ts';

// The checked-in CRDs are golden files of the generator (`make crds` or UPDATE_GOLDEN=1 rewrites them).
const golden = goldenDir(import.meta.dirname);
const isCrdFile = (name: string) => !name.includes('/') && name.endsWith('.yaml');
// biome-ignore lint/suspicious/noExplicitAny: the tests walk generated YAML
type Json = any;

/** Every rule of a structural schema the apiserver enforces that zod output could break. */
function assertStructural(node: Record<string, unknown>, path: string): void {
  for (const key of ['$ref', '$defs', 'anyOf', 'oneOf', 'allOf', 'not', 'propertyNames', 'const']) {
    assert.equal(node[key], undefined, `${path}: ${key} is not allowed`);
  }
  const preserve = node['x-kubernetes-preserve-unknown-fields'] === true;
  assert.ok(typeof node.type === 'string' || preserve, `${path}: type missing`);
  if (node.properties) {
    assert.equal(node.additionalProperties, undefined, `${path}: additionalProperties next to properties`);
    for (const [name, child] of Object.entries(node.properties as Record<string, Record<string, unknown>>)) {
      assertStructural(child, `${path}.${name}`);
    }
  }
  if (node.additionalProperties) {
    assertStructural(node.additionalProperties as Record<string, unknown>, `${path}.*`);
  }
  if (node.items) assertStructural(node.items as Record<string, unknown>, `${path}[]`);
}

describe('generated CRDs', () => {
  it('the checked-in YAML equals the generator output (run `make crds` after changing crds/schema)', () => {
    const files = renderCrdFiles();
    assert.deepEqual(Object.keys(files).sort(), [
      'sessionapprovals.chaperone.dev.yaml',
      'sessionpolicies.chaperone.dev.yaml',
    ]);
    for (const [file, text] of Object.entries(files)) {
      assert.match(text, /^kind: CustomResourceDefinition$/m, `crds/${file} is a CRD`);
      golden.check(file, text);
    }
    // A CRD YAML the generator no longer writes (a renamed kind) must not stay behind.
    golden.assertNoStrayFiles(isCrdFile);
  });

  it('are structural schemas', () => {
    for (const crd of [sessionPolicyCrd(), sessionApprovalCrd()] as Array<Record<string, Json>>) {
      const schema = crd.spec.versions[0].schema.openAPIV3Schema;
      assertStructural(schema, crd.metadata.name);
    }
  });

  it('describe every field below spec.targets (what kubectl explain shows)', () => {
    const crd = parse(renderCrdFiles()['sessionpolicies.chaperone.dev.yaml']!) as Record<string, Json>;
    const targets = crd.spec.versions[0].schema.openAPIV3Schema.properties.spec.properties.targets;
    assert.match(targets.description, /only through the sidecar/);
    const undescribed = Object.entries(targets.items.properties as Record<string, { description?: string }>)
      .filter(([, v]) => !v.description)
      .map(([k]) => k);
    assert.deepEqual(undescribed, []);
    assert.equal(targets['x-kubernetes-list-type'], 'map');
    assert.deepEqual(targets['x-kubernetes-list-map-keys'], ['name']);
  });

  it('carry the defaults zod declares', () => {
    const crd = sessionPolicyCrd() as Record<string, Json>;
    const spec = crd.spec.versions[0].schema.openAPIV3Schema.properties.spec;
    assert.equal(spec.properties.targets.items.properties.transparent.default, false);
    assert.equal(spec.properties.recording.properties.failMode.default, 'failClosed');
    assert.equal(spec.properties.approvals.properties.timeoutSeconds.default, 300);
  });
});

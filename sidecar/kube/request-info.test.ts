import assert from 'node:assert/strict';
import { test } from 'node:test';
import { kubeMatches } from '../http/guard.ts';
import { kubeRequestInfo, recordedAttributes } from './request-info.ts';
import { MASKED_DATA, MASKED_STRING, maskSecrets } from './secrets.ts';

const attrs = (m: string, url: string) => {
  const [p, q = ''] = url.split('?');
  return recordedAttributes(kubeRequestInfo(m, p!, q));
};

test('request info: the apiserver RequestInfo rules (verbs, groups, namespaces, subresources)', () => {
  const cases: [string, string, Record<string, string>][] = [
    ['GET', '/api/v1/namespaces', { verb: 'list', apiGroup: '', apiVersion: 'v1', resource: 'namespaces' }],
    [
      'GET',
      '/api/v1/namespaces/ns1',
      { verb: 'get', apiGroup: '', apiVersion: 'v1', namespace: 'ns1', resource: 'namespaces', name: 'ns1' },
    ],
    [
      'GET',
      '/api/v1/namespaces/ns1/pods',
      { verb: 'list', apiGroup: '', apiVersion: 'v1', namespace: 'ns1', resource: 'pods' },
    ],
    [
      'GET',
      '/api/v1/namespaces/ns1/pods?watch=true&labelSelector=a%3Db',
      {
        verb: 'watch',
        apiGroup: '',
        apiVersion: 'v1',
        namespace: 'ns1',
        resource: 'pods',
        labelSelector: 'a=b',
      },
    ],
    [
      'GET',
      '/api/v1/namespaces/ns1/pods?watch=0',
      { verb: 'list', apiGroup: '', apiVersion: 'v1', namespace: 'ns1', resource: 'pods' },
    ],
    [
      'GET',
      '/api/v1/namespaces/ns1/pods?fieldSelector=metadata.name%3Dp1&watch=1',
      {
        verb: 'watch',
        apiGroup: '',
        apiVersion: 'v1',
        namespace: 'ns1',
        resource: 'pods',
        name: 'p1',
        fieldSelector: 'metadata.name=p1',
      },
    ],
    [
      'GET',
      '/api/v1/watch/namespaces/ns1/pods/p1',
      { verb: 'watch', apiGroup: '', apiVersion: 'v1', namespace: 'ns1', resource: 'pods', name: 'p1' },
    ],
    [
      'DELETE',
      '/apis/apps/v1/namespaces/ns1/deployments',
      {
        verb: 'deletecollection',
        apiGroup: 'apps',
        apiVersion: 'v1',
        namespace: 'ns1',
        resource: 'deployments',
      },
    ],
    [
      'DELETE',
      '/apis/apps/v1/namespaces/ns1/deployments/d',
      {
        verb: 'delete',
        apiGroup: 'apps',
        apiVersion: 'v1',
        namespace: 'ns1',
        resource: 'deployments',
        name: 'd',
      },
    ],
    [
      'POST',
      '/api/v1/namespaces/ns1/pods/p1/exec?command=sh',
      {
        verb: 'create',
        apiGroup: '',
        apiVersion: 'v1',
        namespace: 'ns1',
        resource: 'pods',
        name: 'p1',
        subresource: 'exec',
      },
    ],
    [
      'GET',
      '/api/v1/namespaces/ns1/pods/p1/exec',
      {
        verb: 'get',
        apiGroup: '',
        apiVersion: 'v1',
        namespace: 'ns1',
        resource: 'pods',
        name: 'p1',
        subresource: 'exec',
      },
    ],
    [
      'PUT',
      '/api/v1/namespaces/ns1/finalize',
      {
        verb: 'update',
        apiGroup: '',
        apiVersion: 'v1',
        namespace: 'ns1',
        resource: 'namespaces',
        name: 'ns1',
        subresource: 'finalize',
      },
    ],
    [
      'PATCH',
      '/apis/chaperone.dev/v1alpha1/namespaces/a/sessionapprovals/x/status',
      {
        verb: 'patch',
        apiGroup: 'chaperone.dev',
        apiVersion: 'v1alpha1',
        namespace: 'a',
        resource: 'sessionapprovals',
        name: 'x',
        subresource: 'status',
      },
    ],
    [
      'GET',
      '/api/v1/nodes/n1/proxy/metrics',
      { verb: 'get', apiGroup: '', apiVersion: 'v1', resource: 'nodes', name: 'n1', subresource: 'proxy' },
    ],
    [
      'GET',
      '/api/v1/proxy/nodes/n1/metrics',
      { verb: 'proxy', apiGroup: '', apiVersion: 'v1', resource: 'nodes', name: 'n1' },
    ],
    ['GET', '/apis/apps/v1', { verb: 'get', apiGroup: '', apiVersion: '' }],
    ['GET', '/healthz', { verb: 'get', apiGroup: '', apiVersion: '' }],
  ];
  for (const [m, url, want] of cases) assert.deepEqual(attrs(m, url), want, `${m} ${url}`);
  assert.equal(kubeRequestInfo('POST', '/api/v1/namespaces/a/pods', 'dryRun=All').dryRun, true);
});

test('kubernetes guardrail terms: any listed value matches, resource terms never match non-resource paths', () => {
  const del = kubeRequestInfo('DELETE', '/api/v1/namespaces/prod', '');
  assert.equal(kubeMatches({ verbs: ['delete', 'deletecollection'], resources: ['namespaces'] }, del), true);
  assert.equal(kubeMatches({ verbs: ['delete'], resources: ['pods'] }, del), false);
  const exec = kubeRequestInfo('GET', '/api/v1/namespaces/prod/pods/p/exec', 'command=sh');
  assert.equal(kubeMatches({ subresources: ['exec', 'attach'], namespaces: ['prod'] }, exec), true);
  // kubectl 1.31+ execs over a WebSocket (GET): a create rule still matches, as the apiserver
  // authorizes it for create too; so does a get rule (RequestInfo's verb).
  assert.equal(exec.verb, 'get');
  assert.equal(kubeMatches({ verbs: ['create'], resources: ['pods'], subresources: ['exec'] }, exec), true);
  assert.equal(kubeMatches({ verbs: ['get'], subresources: ['exec'] }, exec), true);
  const pf = kubeRequestInfo('GET', '/api/v1/namespaces/prod/pods/p/portforward', '');
  assert.equal(kubeMatches({ verbs: ['create'], subresources: ['portforward'] }, pf), true);
  assert.equal(
    kubeMatches({ verbs: ['create'] }, kubeRequestInfo('GET', '/api/v1/namespaces/prod/pods/p', '')),
    false,
  );
  assert.equal(
    kubeMatches({ verbs: ['create'] }, kubeRequestInfo('GET', '/api/v1/namespaces/prod/pods/p/log', '')),
    false,
  );
  assert.equal(kubeMatches({ resources: ['*'] }, kubeRequestInfo('GET', '/version', '')), false);
  assert.equal(kubeMatches({ verbs: ['get'] }, kubeRequestInfo('GET', '/version', '')), true);
});

test('secret masking: objects, lists, watch events, tables and the last-applied annotation', () => {
  const secret = {
    kind: 'Secret',
    apiVersion: 'v1',
    metadata: {
      name: 's',
      annotations: {
        'kubectl.kubernetes.io/last-applied-configuration': JSON.stringify({
          kind: 'Secret',
          data: { password: 'aHVudGVyMg==' },
          stringData: { token: 'plain' },
        }),
      },
    },
    data: { password: 'aHVudGVyMg==' },
  };
  const one = structuredClone(secret);
  assert.deepEqual(maskSecrets(one, true).sort(), ['data', 'metadata.annotations']);
  assert.equal(one.data.password, MASKED_DATA);
  assert.doesNotMatch(JSON.stringify(one), /aHVudGVyMg==|plain/);
  const list = { kind: 'SecretList', items: [{ metadata: { name: 'a' }, data: { k: 'djE=' } }] };
  maskSecrets(list, false);
  assert.equal(list.items[0]!.data.k, MASKED_DATA);
  const ev = { type: 'ADDED', object: { kind: 'Secret', metadata: { name: 'a' }, stringData: { k: 'v' } } };
  maskSecrets(ev, true);
  assert.equal(ev.object.stringData.k, MASKED_STRING);
  const table = {
    kind: 'Table',
    rows: [{ cells: ['a', 'Opaque', 1], object: { metadata: { name: 'a' }, data: { k: 'djE=' } } }],
  };
  maskSecrets(table, true);
  assert.equal(table.rows[0]!.object.data.k, MASKED_DATA);
  // kubectl's tables carry only the metadata of each row (PartialObjectMetadata); the last-applied
  // annotation in it still holds the whole Secret as applied.
  const applied = JSON.stringify({ apiVersion: 'v1', kind: 'Secret', stringData: { password: 'hunter2' } });
  const metaRow = (kind: string) => ({
    kind: 'Table',
    rows: [
      {
        cells: ['db', 'Opaque', 1],
        object: {
          kind,
          metadata: {
            name: 'db',
            annotations: { 'kubectl.kubernetes.io/last-applied-configuration': applied },
          },
        },
      },
    ],
  });
  const metaTable = metaRow('PartialObjectMetadata');
  assert.deepEqual(maskSecrets(metaTable, true), ['rows[0].object.metadata.annotations']);
  assert.doesNotMatch(JSON.stringify(metaTable), /hunter2/);
  const metaList = {
    kind: 'PartialObjectMetadataList',
    items: [
      {
        kind: 'PartialObjectMetadata',
        metadata: {
          name: 'db',
          annotations: { 'kubectl.kubernetes.io/last-applied-configuration': applied },
        },
      },
    ],
  };
  maskSecrets(metaList, true);
  assert.doesNotMatch(JSON.stringify(metaList), /hunter2/);
  // Outside a secrets reply, another resource's metadata is left alone.
  const other = metaRow('PartialObjectMetadata');
  assert.deepEqual(maskSecrets(other, false), []);
  // A ConfigMap's data is not a Secret's.
  const cm = { kind: 'ConfigMap', metadata: { name: 'c' }, data: { k: 'v' } };
  assert.deepEqual(maskSecrets(cm, false), []);
  assert.equal(cm.data.k, 'v');
});
